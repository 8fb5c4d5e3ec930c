"""Assemble a run's training and held-out rows from its data config: read, validate, encode, count.

The result carries the manifest's data_sources (name, path, sha256, rows used, licence) and the row statistics
(read, skipped per reason, truncated, tokens), so what went into an adapter is on record.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from domainlm import log
from domainlm.data.encode import ChatEncoder, Encoded
from domainlm.data.formats import BadRow
from domainlm.data.inputs import Example, RowIssues, file_record, read_jsonl
from domainlm.errors import DataError

logger = log.get("data")


@dataclass
class SFTData:
    train: list[Encoded]
    eval: list[Encoded]
    sources: list[dict]
    stats: dict


def _encode_all(examples: list[Example], encoder: ChatEncoder, issues: RowIssues) -> tuple[list[Encoded], Counter]:
    encoded, used = [], Counter()
    for example in examples:
        try:
            encoded.append(encoder.encode(example.messages))
            used[example.source] += 1
        except BadRow as problem:
            issues.report(example.origin, problem)
    return encoded, used


def _split(examples: list[Example], fraction: float, seed: int) -> tuple[list[Example], list[Example]]:
    n_eval = int(round(len(examples) * fraction))
    if n_eval == 0:
        return examples, []
    order = np.random.default_rng([seed, 7919]).permutation(len(examples))  # fixed split, independent of epochs
    held = set(order[:n_eval].tolist())
    return ([e for i, e in enumerate(examples) if i not in held], [e for i, e in enumerate(examples) if i in held])


def mix_counts(parts, total: int) -> dict[str, int]:
    """Rows per mixture part: `total` split by normalised weight, largest remainders rounded up (sums to total)."""
    weights = np.array([p.weight for p in parts], dtype=np.float64)
    exact = total * weights / weights.sum()
    counts = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - counts), kind="stable")[: total - int(counts.sum())]:
        counts[i] += 1
    return {p.source: int(c) for p, c in zip(parts, counts, strict=True)}


def build(data, tokenizer, seed: int, vertical=None, replay=None) -> SFTData:
    """`data` is a TrainConfig.data section; returns encoded train/eval rows, source records and statistics.
    `vertical` supplies `data.vertical`'s own rows (`rows(split, limit, issues)`, `sources()`, and for a mixture's
    safety part `safety_rows(limit, issues)`, `safety_sources()`): verticals.sft.VerticalRows, passed in by the
    trainer; `replay` supplies a mixture's replay part (`rows(limit)`, `record(used)`): training.replay.ReplayRows.
    With `data.mix`, each part gets its weight's share of max_train_rows (stats["mix"] records what it got)."""
    issues = RowIssues(on_error=data.on_error)
    train, held_out, records = [], [], []
    counts = mix_counts(data.mix, data.max_train_rows) if data.mix else {}
    mix_rows: dict[str, list[Example]] = {}
    if data.vertical:
        if vertical is None:
            raise DataError(f"data.vertical: {data.vertical!r} needs the vertical's rows (verticals.sft.VerticalRows)")
        records += vertical.sources()
        # the vertical samples deterministically (same seed → same rows) when a cap is set
        mix_rows["vertical"] = vertical.rows("train", counts.get("vertical", data.max_train_rows), issues)
        train += mix_rows["vertical"]
        if data.max_eval_rows:
            held_out += vertical.rows(data.eval_split, data.max_eval_rows, issues)
    if "safety" in counts:
        records += vertical.safety_sources()
        mix_rows["safety"] = vertical.safety_rows(counts["safety"], issues)
        train += mix_rows["safety"]
    if "replay" in counts:
        if replay is None:
            raise DataError("data.mix names a replay part but no replay rows were given (training.replay.ReplayRows)")
        mix_rows["replay"] = replay.rows(counts["replay"])
        train += mix_rows["replay"]
        records.append(replay.record(len(mix_rows["replay"])))
    file_rows = []
    for spec in data.files:
        path = Path(spec.path).expanduser()
        name = spec.name or path.stem
        rows = read_jsonl(path, spec.format, name, issues, data.system_prompt)
        file_rows += rows
        records.append(file_record(path, name, spec.licence, len(rows)))   # rows: valid rows in the file
    for spec in data.eval_files:
        path = Path(spec.path).expanduser()
        held_out += read_jsonl(path, spec.format, spec.name or path.stem, issues, data.system_prompt)
    if file_rows and not data.eval_files and not held_out:
        file_rows, held = _split(file_rows, data.eval_fraction, seed)
        held_out += held
    if "files" in counts and len(file_rows) > counts["files"]:
        keep = np.sort(np.random.default_rng([seed, 15485863]).permutation(len(file_rows))[: counts["files"]])
        file_rows = [file_rows[i] for i in keep]
    mix_rows["files"] = file_rows
    train += file_rows
    rows_read = len(train) + len(held_out) + issues.skipped
    mix = {p.source: {"weight": p.weight, "wanted": counts[p.source], "rows": len(mix_rows.get(p.source, []))}
           for p in data.mix}
    short = {name: m for name, m in mix.items() if m["rows"] < m["wanted"]}
    if short:   # a small source gives what it has; the mixture's real shares are on record
        logger.warning("mixture parts with fewer rows than their share", parts=short)
    if not data.mix and data.max_train_rows and len(train) > data.max_train_rows:
        keep = np.sort(np.random.default_rng([seed, 104729]).permutation(len(train))[: data.max_train_rows])
        train = [train[i] for i in keep]
    held_out = held_out[: data.max_eval_rows]

    encoder = ChatEncoder(tokenizer, data.max_length, data.truncate)
    train_encoded, used = _encode_all(train, encoder, issues)
    eval_encoded, _ = _encode_all(held_out, encoder, issues)
    issues.log_summary("train+eval")
    if not train_encoded:
        raise DataError(f"no usable training rows ({issues.skipped} bad rows skipped: {dict(issues.counts)})")
    for record in records:
        record.setdefault("rows_available", record.get("rows"))
        record["rows"] = used.get(record["name"], 0)
    stats = {
        "train_rows": len(train_encoded),
        "eval_rows": len(eval_encoded),
        "rows_read": rows_read,
        "bad_rows": issues.to_dict(),
        "truncated_rows": sum(r.truncated for r in train_encoded),
        "train_tokens": int(sum(len(r) for r in train_encoded)),
        "train_target_tokens": int(sum(r.n_targets for r in train_encoded)),
    }
    if mix:
        stats["mix"] = mix
    logger.info("data ready", train_rows=stats["train_rows"], eval_rows=stats["eval_rows"],
                skipped=issues.skipped, truncated=stats["truncated_rows"], tokens=stats["train_tokens"])
    return SFTData(train_encoded, eval_encoded, records, stats)
