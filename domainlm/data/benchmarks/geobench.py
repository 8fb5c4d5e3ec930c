"""GeoBench (K2): AP-study MC (question.stem, question.choices, answerKey) and NPEE blocks by question kind."""

from __future__ import annotations

from domainlm.data.benchmarks.files import read_json, shared_file

DATASET = "geobench_k2"


def apstudy() -> list[dict]:
    return read_json(shared_file(DATASET, "geobench_apstudy.json"))


def npee() -> dict[str, dict]:
    return read_json(shared_file(DATASET, "geobench_npee.json"))


def texts() -> list[tuple[str, str]]:
    items = [(row["id"], row["question"]["stem"]) for row in apstudy()]
    for kind, block in npee().items():
        items += [(f"npee.{kind}#{i}", str(q)) for i, q in enumerate(block["question"])]
    return items
