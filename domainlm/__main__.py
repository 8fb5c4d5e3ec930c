"""`python -m domainlm …` is the `domainlm` command (for environments where the console script is not on PATH)."""

from domainlm.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
