"""Eval-area helpers: small task files and eval configs written into a test's tmp folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

# One thread: the test CPU is shared (other suites, vLLM servers), and OpenMP barriers stall badly when another
# process holds a core — measured here: a 47-token forward 6.3 s with 2 threads vs 0.34 s with 1.
THREADS = 1


def write_config(folder: Path, domain: list, general: list | None = None, **fields) -> Path:
    """An eval config YAML (first line says how it is launched, as shipped configs do)."""
    data = {"vertical": "medical", "domain_tasks": domain, "general_tasks": general or [],
            "cache": {"path": str(folder / "cache.sqlite")}, "bootstrap": {"samples": 500},
            "hf": {"threads": THREADS}, **fields}
    path = folder / "eval.yaml"
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(f"# launch: domainlm eval {path} --model base\n" + yaml.safe_dump(data, sort_keys=False))
    return path


def write_nll_task(folder: Path, vertical: str = "medical") -> Path:
    """The training fixture's own QA rows as a chat-native NLL task: the adapter trained on them must lower their
    answer NLL (a real, checkable effect even at 135M parameters)."""
    from tests.fixtures.training import QA

    rows = [{"id": f"qa{i}", "messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}
            for i, (q, a) in enumerate(QA[vertical])]
    (folder / "qa.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    path = folder / "qa_nll.yaml"
    path.write_text(yaml.safe_dump({"name": "fixture_qa_nll", "kind": "nll", "data": "qa.jsonl",
                                    "fields": {"id": "id", "messages": "messages"}}))
    return path


@pytest.fixture
def task_dir(tmp_path) -> Path:
    folder = tmp_path / "tasks"
    folder.mkdir()
    return folder
