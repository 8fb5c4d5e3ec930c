"""MMLU (Hendrycks, 2020-09 release): <split>/<subject>_<split>.csv without a header (question, A-D, answer)."""

from __future__ import annotations

from domainlm.data.benchmarks.files import read_csv
from domainlm.paths import dataset_dir

DATASET = "mmlu_hendrycks_2020-09"
FIELDS = ["question", "A", "B", "C", "D", "answer"]


def subjects(split: str = "test") -> list[str]:
    return sorted(p.name[: -len(f"_{split}.csv")] for p in (dataset_dir(DATASET) / split).glob(f"*_{split}.csv"))


def rows(subject: str, split: str = "test") -> list[dict]:
    return read_csv(dataset_dir(DATASET) / split / f"{subject}_{split}.csv", header=False, fieldnames=FIELDS)


def texts() -> list[tuple[str, str]]:
    return [(f"{p.stem}#{i}", row["question"]) for p in sorted(dataset_dir(DATASET).glob("*/*.csv"))
            for i, row in enumerate(read_csv(p, header=False, fieldnames=FIELDS))]
