"""The two things a parser yields (Record, Skip), and the hash of a source's files."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from domainlm.hashing import sha256_bytes, sha256_file_cached



@dataclass(frozen=True)
class Record:
    id: str                      # the dataset's own id (or file position), unique within the source
    messages: list[dict]         # [{"role": "user"|"assistant", "content": str}, ...], ends with assistant
    lang: str | None = None      # "en" / "zh" when the row says so; else the source's declared language
    meta: dict = field(default_factory=dict)  # e.g. topic, department


@dataclass(frozen=True)
class Skip:
    reason: str                  # short, stable: "empty answer", "invalid JSON", "duplicate", ...
    where: str                   # file:line or file#index


def turns(user: str, assistant: str) -> list[dict]:
    return [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]


def files_sha256(files: list[Path], root: Path) -> str:
    """One file's sha256, or the sha256 of the sorted `relative/path:sha256` lines of several."""
    if len(files) == 1:
        return sha256_file_cached(files[0])
    return sha256_bytes("\n".join(f"{p.relative_to(root).as_posix()}:{sha256_file_cached(p)}" for p in sorted(files)))
