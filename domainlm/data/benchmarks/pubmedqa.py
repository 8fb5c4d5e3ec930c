"""PubMedQA (pqa-labeled): 1,000 expert-labelled questions with abstracts; the 500 of test_ground_truth.json score."""

from __future__ import annotations

from domainlm.data.benchmarks.files import read_json, shared_file

DATASET = "pubmedqa"
LABELS = ("yes", "no", "maybe")


def questions() -> dict[str, dict]:
    """pmid → {QUESTION, CONTEXTS, final_decision, …} for all 1,000 labelled questions."""
    return read_json(shared_file(DATASET, "ori_pqal.json"))


def test_labels() -> dict[str, str]:
    """pmid → gold label of the 500 test questions, in file order."""
    return read_json(shared_file(DATASET, "test_ground_truth.json"))


def texts() -> list[tuple[str, str]]:
    return [(pmid, item["QUESTION"]) for pmid, item in questions().items()]
