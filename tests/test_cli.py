"""The CLI table and docs/cli.md stay in sync; errors reach the user as one clear line, never a traceback."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from domainlm.cli import COMMANDS

DOCS = Path(__file__).resolve().parent.parent / "docs" / "cli.md"


def run(*args, **kw):
    return subprocess.run([sys.executable, "-m", "domainlm.cli", *args], capture_output=True, text=True, **kw)


def test_command_table_matches_docs():
    documented = set(re.findall(r"^## `domainlm ([a-z-]+)", DOCS.read_text(), flags=re.M))
    assert documented == set(COMMANDS), f"docs/cli.md documents {sorted(documented)}, CLI has {sorted(COMMANDS)}"


def test_every_command_has_help():
    for name in COMMANDS:
        result = run(name, "--help")
        assert result.returncode == 0, result.stderr
        assert "usage: domainlm" in result.stdout


def test_user_error_is_one_line_without_traceback(tmp_path):
    result = run("model", "info", str(tmp_path / "missing-model"))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "domainlm: error: unknown base model" in result.stderr
