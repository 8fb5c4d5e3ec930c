"""MedAgentsBench test files (MedQA USMLE, MedMCQA, MMLU-medical): question, options {A: text, …}, answer_idx."""

from __future__ import annotations

from domainlm.data.benchmarks.files import read_jsonl, shared_file

DATASETS = ("medqa_usmle_4opt", "medmcqa_medagents", "mmlu_medical_medagents")


def rows(dataset: str) -> list[dict]:
    return read_jsonl(shared_file(dataset, "test.jsonl"))


def texts(dataset: str) -> list[tuple[str, str]]:
    return [(f"test.jsonl#{i}", row["question"]) for i, row in enumerate(rows(dataset))]
