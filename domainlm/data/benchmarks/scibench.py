"""SciBench chemistry: one JSON list per textbook (atkins, chemmc, matter, quan), `_sol` files with solutions."""

from __future__ import annotations

from domainlm.data.benchmarks.files import read_json, shared_file
from domainlm.paths import dataset_dir

DATASET = "scibench_chemistry"


def book(name: str) -> list[dict]:
    return read_json(shared_file(DATASET, f"{name}.json"))


def texts() -> list[tuple[str, str]]:
    return [(f"{p.stem}#{i}", row["problem_text"]) for p in sorted(dataset_dir(DATASET).glob("*.json"))
            for i, row in enumerate(read_json(p))]
