"""CMMLU (zh): <split>/<subject>.csv with a header (index, Question, A-D, Answer)."""

from __future__ import annotations

from domainlm.data.benchmarks.files import read_csv
from domainlm.paths import dataset_dir

DATASET = "cmmlu"


def subjects(split: str = "test") -> list[str]:
    return sorted(p.stem for p in (dataset_dir(DATASET) / split).glob("*.csv"))


def rows(subject: str, split: str = "test") -> list[dict]:
    return read_csv(dataset_dir(DATASET) / split / f"{subject}.csv")


def texts() -> list[tuple[str, str]]:
    return [(f"{p.parent.name}/{p.stem}#{i}", row["Question"]) for p in sorted(dataset_dir(DATASET).glob("*/*.csv"))
            for i, row in enumerate(read_csv(p))]
