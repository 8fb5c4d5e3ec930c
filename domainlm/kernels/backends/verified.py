"""`verified_on`: what a run on real hardware recorded, and nothing else.

verified_on.json (beside this file) maps a backend name to the records `scripts/device_check.sh` wrote on a machine
that has that accelerator. Nobody edits it by hand: `python -m domainlm.kernels.backends.verified add RECORD.json`
appends a record after checking its shape (hardware named, detection passed on that hardware, every check
with a status). Adapters read it; none of them can set it in code.
"""

from __future__ import annotations

import json
import sys
from functools import lru_cache
from pathlib import Path

from domainlm.errors import DomainlmError
from domainlm.atomic import atomic_write_json

VERIFIED_FILE = Path(__file__).with_name("verified_on.json")
STATUSES = {"pass", "fail", "skip"}
REQUIRED_KEYS = ("backend", "hardware", "driver", "torch", "date", "checks", "passed", "script")


def validate_record(record: dict, known_backends: set[str]) -> None:
    where = f"verified_on record {record.get('backend')!r}/{record.get('date')!r}"
    missing = [k for k in REQUIRED_KEYS if k not in record]
    if missing:
        raise DomainlmError(f"{where}: missing keys {missing}")
    if record["backend"] not in known_backends:
        raise DomainlmError(f"{where}: unknown backend (known: {sorted(known_backends)})")
    if not record["hardware"] or (record["hardware"] == "cpu" and record["backend"] != "cpu"):
        raise DomainlmError(f"{where}: hardware must name the device the checks ran on")
    checks = record["checks"]
    if not isinstance(checks, dict) or not checks:
        raise DomainlmError(f"{where}: checks must be a non-empty mapping")
    for name, check in checks.items():
        if check.get("status") not in STATUSES:
            raise DomainlmError(f"{where}: check {name!r} status must be one of {sorted(STATUSES)}")
        if check["status"] == "skip" and not check.get("reason"):
            raise DomainlmError(f"{where}: skipped check {name!r} must say why")
    if checks.get("detection", {}).get("status") != "pass":
        raise DomainlmError(f"{where}: detection did not pass, so the run did not exercise backend {record['backend']}")
    passed = sorted(n for n, c in checks.items() if c["status"] == "pass")
    if sorted(record["passed"]) != passed:
        raise DomainlmError(f"{where}: 'passed' {record['passed']} does not match the checks that passed {passed}")


@lru_cache(maxsize=1)
def load() -> dict[str, list[dict]]:
    if not VERIFIED_FILE.exists():
        return {}
    return json.loads(VERIFIED_FILE.read_text(encoding="utf-8"))


def records_for(name: str) -> tuple[dict, ...]:
    return tuple(load().get(name, []))


def add(record: dict, known_backends: set[str], path: Path = VERIFIED_FILE) -> None:
    validate_record(record, known_backends)
    data = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    data.setdefault(record["backend"], []).append(record)
    atomic_write_json(path, data)
    load.cache_clear()


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) != 2 or argv[0] != "add":
        print("usage: python -m domainlm.kernels.backends.verified add RECORD.json", file=sys.stderr)
        return 2
    from domainlm.kernels.backends import all_backends

    record = json.loads(Path(argv[1]).read_text(encoding="utf-8"))
    try:
        add(record, {b.name for b in all_backends()})
    except DomainlmError as exc:
        print(f"domainlm: error: {exc}", file=sys.stderr)
        return exc.exit_code
    print(f"recorded {record['backend']} on {record['hardware']} ({record['date']}) in {VERIFIED_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
