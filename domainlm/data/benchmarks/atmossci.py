"""AtmosSci-Bench: templated MCQ files (main_*, extra_*) and open-ended questions (oeq), one JSONL each."""

from __future__ import annotations

from domainlm.data.benchmarks.files import read_jsonl, shared_file
from domainlm.paths import dataset_dir

DATASET = "atmossci_bench"
MCQ_FILES = ("main_1-10.jsonl", "main_11-30.jsonl", "extra_1-10.jsonl")


def rows(name: str) -> list[dict]:
    return read_jsonl(shared_file(DATASET, name))


def texts() -> list[tuple[str, str]]:
    return [(row["id"], row["problem"]) for p in sorted(dataset_dir(DATASET).glob("*.jsonl")) for row in rows(p.name)]
