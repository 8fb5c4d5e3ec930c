"""CMB-Clin (zh clinical cases with question/answer pairs): decontamination only, no built-in scoring task."""

from __future__ import annotations

from domainlm.data.benchmarks.files import read_json, shared_file

DATASET = "cmb_clin"


def cases() -> list[dict]:
    return read_json(shared_file(DATASET, "CMB-Clin-qa.json"))


def texts() -> list[tuple[str, str]]:
    items = []
    for case in cases():
        items.append((f"case{case['id']}", case.get("description", "")))
        items += [(f"case{case['id']}.q{j}", qa["question"]) for j, qa in enumerate(case.get("QA_pairs", []))]
    return items
