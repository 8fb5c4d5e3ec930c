"""SafetyBench zh subset (thu-coai): 2,100 multiple-choice safety questions, 7 categories × 300, released answers."""

from __future__ import annotations

import ast

from domainlm.data.benchmarks.files import read_json, shared_file
from domainlm.errors import DataError

DATASET = "safetybench_zh"


def rows() -> list[dict]:
    """{id, category, question, options (list), answer (index)} for the questions with a released answer."""
    path = shared_file(DATASET, "test_zh_subset.json")
    answers = read_json(shared_file(DATASET, "test_answers_zh_subset.json"))
    out = []
    for number, row in enumerate(read_json(path)):
        options = row["options"]
        if isinstance(options, str):   # the release writes the option list as a Python literal
            try:
                options = ast.literal_eval(options)
            except (ValueError, SyntaxError):
                raise DataError(f"{path}: question {row.get('id')} (#{number}): options are not a list") from None
        answer = answers.get(str(row["id"]))
        if answer is None:
            continue
        out.append({"id": str(row["id"]), "category": row["category"], "question": row["question"].strip(),
                    "options": [str(o).strip() for o in options], "answer": int(answer["answer"])})
    return out


def texts() -> list[tuple[str, str]]:
    return [(row["id"], row["question"]) for row in rows()]
