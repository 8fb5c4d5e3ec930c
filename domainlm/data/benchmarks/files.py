"""Read the shared benchmark files (JSONL, JSON, CSV) with errors that name the file and line."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from domainlm.errors import DataError
from domainlm.paths import dataset_dir


def shared_file(dataset: str, *parts: str) -> Path:
    """A file inside one shared dataset folder (../shared/data/<dataset>/...)."""
    path = dataset_dir(dataset).joinpath(*parts)
    if not path.is_file():
        raise DataError(f"expected data file {path} (dataset '{dataset}') is missing")
    return path


def read_jsonl(path: Path) -> list[dict]:
    rows = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
            if not isinstance(row, dict):
                raise DataError(f"{path}:{number}: each line must be a JSON object")
            rows.append(row)
    return rows


def read_json(path: Path):
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None


def read_csv(path: Path, header: bool = True, fieldnames: list[str] | None = None,
             encoding: str = "utf-8") -> list[dict]:
    with open(path, encoding=encoding, newline="") as handle:
        reader = csv.DictReader(handle, fieldnames=None if header else fieldnames)
        return [dict(row) for row in reader]
