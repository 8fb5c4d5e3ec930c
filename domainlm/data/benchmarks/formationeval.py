"""FormationEval v0.1 (oil & gas MC): id, question, choices, answer_index."""

from __future__ import annotations

from domainlm.data.benchmarks.files import read_json, shared_file

DATASET = "formationeval_oil_gas"


def rows() -> list[dict]:
    return read_json(shared_file(DATASET, "formationeval_v0.1.json"))


def texts() -> list[tuple[str, str]]:
    return [(row["id"], row["question"]) for row in rows()]
