"""ChemBench questions (one JSONL per part; each row holds `examples` with an `input` and `target_scores`)."""

from __future__ import annotations

from domainlm.data.benchmarks.files import read_jsonl
from domainlm.paths import dataset_dir

DATASET = "chembench"


def rows() -> list[dict]:
    return [row for path in sorted(dataset_dir(DATASET).glob("*.jsonl")) for row in read_jsonl(path)]


def texts() -> list[tuple[str, str]]:
    return [(f"{row.get('uuid', row.get('name'))}.{j}", ex["input"])
            for row in rows() for j, ex in enumerate(row["examples"])]
