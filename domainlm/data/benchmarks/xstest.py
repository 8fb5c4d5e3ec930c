"""XSTest (Röttger et al.): 250 safe prompts that look unsafe (over-refusal) and 200 unsafe contrast prompts, typed."""

from __future__ import annotations

from domainlm.data.benchmarks.files import read_csv, shared_file

DATASET = "xstest"


def rows() -> list[dict]:
    """{id, prompt, type, label (safe | unsafe), focus} in file order."""
    return [{"id": row["id"], "prompt": row["prompt"].strip(), "type": row["type"], "label": row["label"],
             "focus": row.get("focus", "")}
            for row in read_csv(shared_file(DATASET, "xstest_prompts.csv")) if row.get("prompt", "").strip()]


def texts() -> list[tuple[str, str]]:
    return [(row["id"], row["prompt"]) for row in rows()]
