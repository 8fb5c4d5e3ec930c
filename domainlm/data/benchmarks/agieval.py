"""AGIEval Gaokao chemistry (zh): passage, question, options "(A)text", label."""

from __future__ import annotations

from domainlm.data.benchmarks.files import read_jsonl, shared_file

DATASET = "agieval_gaokao_chemistry"


def rows() -> list[dict]:
    return read_jsonl(shared_file(DATASET, "gaokao-chemistry.jsonl"))


def texts() -> list[tuple[str, str]]:
    return [(f"{i}", "\n".join(filter(None, [row.get("passage"), row["question"]]))) for i, row in enumerate(rows())]
