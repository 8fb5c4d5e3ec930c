"""Read a user task's data file (JSONL, JSON, CSV) with errors that name the file and line."""

from __future__ import annotations

from pathlib import Path

from domainlm.data.benchmarks.files import read_csv, read_json, read_jsonl
from domainlm.errors import DataError


def read_rows(path: Path, fmt: str | None = None) -> list[dict]:
    """Rows of a user data file, by extension (.jsonl, .json list, .csv with header)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"task data file not found: {path}")
    fmt = fmt or path.suffix.lstrip(".").lower()
    if fmt == "jsonl":
        return read_jsonl(path)
    if fmt == "json":
        data = read_json(path)
        if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
            raise DataError(f"{path}: a JSON task file must hold a list of objects")
        return data
    if fmt == "csv":
        return read_csv(path)
    raise DataError(f"{path}: unsupported task data format '{fmt}' (use .jsonl, .json or .csv)")
