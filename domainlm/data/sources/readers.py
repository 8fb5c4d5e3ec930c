"""File readers that report bad rows instead of raising: JSONL line by line, JSON arrays, CSV in any encoding."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path

from domainlm.data.sources.base import Skip
from domainlm.errors import DataError


def jsonl(path: Path) -> Iterator[tuple[str, dict | Skip]]:
    """(where, object) per non-blank line; a line that is not a JSON object becomes a Skip."""
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            where = f"{path.name}:{number}"
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                yield where, Skip("invalid JSON", where)
                continue
            yield where, obj if isinstance(obj, dict) else Skip("not a JSON object", where)


def json_array(path: Path) -> Iterator[tuple[str, dict | Skip]]:
    """(where, object) per element of a top-level JSON array; the whole file must parse."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON array of rows, found {type(data).__name__}")
    for index, obj in enumerate(data):
        where = f"{path.name}#{index}"
        yield where, obj if isinstance(obj, dict) else Skip("not a JSON object", where)


def csv_dicts(path: Path, encoding: str = "utf-8") -> Iterator[tuple[str, dict | Skip]]:
    """(where, row dict) per CSV record; the file must decode strictly in `encoding`."""
    try:
        text = path.read_bytes().decode(encoding)
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: does not decode as {encoding} at byte {exc.start}") from None
    csv.field_size_limit(1 << 30)
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    header = next(reader, None)
    if not header:
        raise DataError(f"{path}: empty CSV (no header row)")
    for index, row in enumerate(reader, 2):
        where = f"{path.name}:{index}"  # CSV record number (header = 1)
        if len(row) != len(header):
            yield where, Skip(f"expected {len(header)} CSV fields", where)
            continue
        yield where, dict(zip(header, row, strict=True))
