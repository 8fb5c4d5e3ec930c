"""Load one source's files into rows with a split, once per process: parse, count skips, dedup, hash-split.

Split rule (deterministic, disjoint, stable across runs and machines): sha256 of the row's normalised opening
question, mod 100, below the vertical's eval_percent → eval. Keying on the question text rather than the row id
keeps the same question (MedQuAD repeats 2,062 of them across collections; Huatuo dialogues share openings) on one
side of the split.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from domainlm.data.sources import Record, Skip, parse_file
from domainlm.data.sources.base import files_sha256
from domainlm.hashing import sha256_file_cached
from domainlm.errors import DataError
from domainlm.data.usage import eval_only_split
from domainlm.paths import dataset_dir
from domainlm.verticals.spec import Source
from domainlm.data.text import split_key


@dataclass
class LoadedSource:
    source: Source
    root: Path                    # the folder the file globs are relative to
    files: list[Path]
    sha256: str
    rows: list[dict]              # {"id", "source", "lang", "split", "messages" (no system turn), "meta"}
    skipped: Counter = field(default_factory=Counter)  # reason → count
    skipped_where: dict = field(default_factory=dict)  # reason → first place it happened (file:line)

    def count(self, split: str | None = None) -> int:
        return sum(1 for r in self.rows if split is None or r["split"] == split)


_CACHE: dict[tuple, LoadedSource] = {}


def source_root(source: Source, vertical_folder: Path) -> Path:
    if source.dataset is not None:
        return dataset_dir(source.dataset)  # DataError naming the folder expected when it is missing
    root = (vertical_folder / source.path).resolve()
    if not root.is_dir():
        raise DataError(f"source '{source.name}': folder not found: {root} (path '{source.path}' is relative to "
                        f"the vertical's folder {vertical_folder})")
    return root


def source_files(source: Source, root: Path) -> list[Path]:
    files: list[Path] = []
    for pattern in source.files:
        matched = sorted(p for p in root.glob(pattern) if p.is_file())
        if not matched:
            raise DataError(f"source '{source.name}': no file matches '{pattern}' in {root}")
        files += [p for p in matched if p not in files]
    if source.split != "eval" and source.dataset is not None:
        for path in files:   # a glob can reach an eval-only folder (MedSafetyBench test/) that its text did not name
            if eval_only_split(source.dataset, path.relative_to(root)):
                raise DataError(f"source '{source.name}': {path} is in the eval-only part of dataset "
                                f"'{source.dataset}' (../shared/data/README.md): it is never trained on")
    return files


def hash_split(key: str, eval_percent: int) -> str:
    bucket = int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big") % 100
    return "eval" if bucket < eval_percent else "train"


def _split_of(source: Source, messages: list[dict], eval_percent: int) -> str:
    if source.split != "hash":
        return source.split
    return hash_split(split_key(messages[0]["content"]), eval_percent)  # the opening question


def load_source(source: Source, vertical_folder: Path, eval_percent: int) -> LoadedSource:
    root = source_root(source, vertical_folder)
    files = source_files(source, root)
    stamp = tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files)
    key = (source.model_dump_json(), str(root), stamp, eval_percent)
    if key not in _CACHE:
        _CACHE[key] = _parse(source, root, files, eval_percent)
    return _CACHE[key]


def _parse(source: Source, root: Path, files: list[Path], eval_percent: int) -> LoadedSource:
    loaded = LoadedSource(source, root, files, files_sha256(files, root), rows=[])
    ids: set[str] = set()
    contents: set[str] = set()

    def skip(reason: str, where: str) -> None:
        loaded.skipped[reason] += 1
        loaded.skipped_where.setdefault(reason, where)

    for path in files:
        sha256_file_cached(path)  # hashed alongside parsing so the card never re-reads the file
        for item in parse_file(source.format, path):
            if isinstance(item, Skip):
                skip(item.reason, item.where)
                continue
            assert isinstance(item, Record)
            lang = item.lang if source.lang == "row" else source.lang
            where = item.id if item.id.startswith(path.name) else f"{path.name}:{item.id}"
            if lang not in ("en", "zh"):
                skip("row has no language", where)
                continue
            row_id = f"{source.name}:{item.id}"
            digest = hashlib.sha256(repr([(m["role"], m["content"]) for m in item.messages]).encode()).hexdigest()
            if row_id in ids:
                skip("duplicate id", where)
            elif digest in contents:
                skip("duplicate row", where)
            else:
                ids.add(row_id)
                contents.add(digest)
                loaded.rows.append({"id": row_id, "source": source.name, "lang": lang,
                                    "split": _split_of(source, item.messages, eval_percent),
                                    "messages": item.messages, "meta": item.meta})
    return loaded
