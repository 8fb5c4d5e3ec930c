"""GAOKAO-Bench chemistry (zh): {"example": [{year, question, answer, …}]} per file (MCQs, open-ended)."""

from __future__ import annotations

from domainlm.data.benchmarks.files import read_json, shared_file
from domainlm.paths import dataset_dir

DATASET = "gaokao_bench_chemistry"
MCQ_FILE = "2010-2022_Chemistry_MCQs.json"


def examples(name: str = MCQ_FILE) -> list[dict]:
    return read_json(shared_file(DATASET, name))["example"]


def texts() -> list[tuple[str, str]]:
    return [(f"{p.stem}#{i}", row["question"]) for p in sorted(dataset_dir(DATASET).glob("*.json"))
            for i, row in enumerate(examples(p.name))]
