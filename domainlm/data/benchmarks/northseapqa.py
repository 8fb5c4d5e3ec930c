"""NorthSeaPQA test (SQuAD layout: documents → paragraphs → qas): decontamination only, no built-in scoring task."""

from __future__ import annotations

from domainlm.data.benchmarks.files import read_json, shared_file

DATASET = "northseapqa_oil_gas"


def documents() -> list[dict]:
    return read_json(shared_file(DATASET, "test.json"))["data"]


def texts() -> list[tuple[str, str]]:
    items = []
    for doc in documents():
        for k, para in enumerate(doc["paragraphs"]):
            items.append((f"{doc['document']}.p{k}", para["context"]))
            items += [(qa["id"], qa["question"]) for qa in para["qas"]]
    return items
