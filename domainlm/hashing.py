"""sha256 of files, bytes and folders (the artifact, data and model hashes)."""

from __future__ import annotations

import hashlib
from pathlib import Path

CHUNK = 1 << 20  # 1 MiB reads keep memory flat on multi-GB weight files


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def sha256_bytes(data: bytes | str) -> str:
    if isinstance(data, str):
        data = data.encode("utf-8")
    return hashlib.sha256(data).hexdigest()


def sha256_tree(folder: str | Path, exclude: tuple[str, ...] = ()) -> dict[str, str]:
    """{relative posix path: sha256} for every file below folder, sorted, minus excluded names."""
    root = Path(folder)
    return {
        p.relative_to(root).as_posix(): sha256_file(p)
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.relative_to(root).as_posix() not in exclude
    }


_CACHE: dict[tuple, str] = {}


def sha256_file_cached(path: Path) -> str:
    """sha256_file, remembered per process by (path, size, mtime): shared data files are hashed once per run."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _CACHE:
        _CACHE[key] = sha256_file(path)
    return _CACHE[key]
