"""The parity benchmark's export is a valid lm-evaluation-harness custom task, and lm-eval scores it item for item
as domainlm does (same prompts, same choices, same lm-eval definitions of acc / acc_norm; float32 on both)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from domainlm.evals import run_eval
from tests.evals.conftest import THREADS, write_config

pytestmark = pytest.mark.slow
BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "eval_vs_lm_eval.py"


def _bench():
    spec = importlib.util.spec_from_file_location("eval_vs_lm_eval", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_exported_task_runs_in_lm_eval_and_agrees_per_item(isolated_home, base_model, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-datasets"))
    exported = _bench().export_task("medmcqa", 8, tmp_path / "task")
    import lm_eval
    from lm_eval.tasks import TaskManager

    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(THREADS)  # as our side runs (see conftest): a shared CPU stalls multi-thread barriers
    try:
        results = lm_eval.simple_evaluate(model="hf", model_args=f"pretrained={base_model.path},dtype=float32",
                                          tasks=[exported["lm_eval_task"]], batch_size=8, device="cpu",
                                          task_manager=TaskManager(include_path=str(exported["lm_eval_dir"])),
                                          log_samples=True)
    finally:
        torch.set_num_threads(threads)
    theirs = {s["doc"]["id"]: (s["acc"], s["acc_norm"]) for s in results["samples"][exported["lm_eval_task"]]}

    config = write_config(tmp_path / "ours", domain=[{"file": str(exported["domainlm_task"])}],
                          hf={"dtype": "float32", "threads": THREADS})
    report = run_eval(config, output_dir=tmp_path / "report")
    ours = {i["id"]: (i["results"]["base"]["acc"], i["results"]["base"]["acc_norm"])
            for i in report["tasks"]["medmcqa"]["items"]}
    assert len(ours) == 8 and ours == theirs
