"""hf and vLLM score the same task the same: one offline vLLM engine (eager, small context) with the adapter as a
LoRARequest and prompt_logprobs, against the hf backend on identical token ids. Both in float32, so the only
differences are kernel rounding (~1e-4 nats) and accuracy must agree within 1 point (here: exactly)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from transformers import AutoTokenizer

from domainlm.evals import scorers
from domainlm.evals.backends.base import encode_requests
from domainlm.evals.backends.hf import HFBackend
from domainlm.evals.config import HFConfig
from domainlm.evals.prompts import PromptBuilder
from domainlm.evals.subjects import BASE, adapter_subject
from domainlm.evals.tasks import TaskContext, build_task, load_task_file
from domainlm.evals.tasks.base import choice_continuations, sample_items
from tests.evals.conftest import THREADS, write_nll_task

pytestmark = pytest.mark.slow
MC_ITEMS = 40


def _accuracy(task, items, results) -> float:
    correct = 0.0
    for n, item in enumerate(items):
        lps = [r["logprob"] for r in results[4 * n: 4 * n + 4]]
        correct += scorers.multiple_choice(lps, choice_continuations(task, item), item.gold)["acc"]
    return 100 * correct / len(items)


def _as_rows(requests) -> list:
    return [[r.context, r.continuation, r.max_tokens] for r in requests]


def test_hf_and_vllm_agree_on_accuracy_and_log_likelihoods(base_model, trained_adapters, tmp_path):
    tokenizer = AutoTokenizer.from_pretrained(base_model.path)
    builder = PromptBuilder(tokenizer)
    task = build_task("medmcqa", TaskContext("medical", 1234))
    task.template = "Question: {question}\nAnswer:"  # cloze form: half the prompt tokens (vLLM scores every position)
    items = sample_items(task.items, MC_ITEMS, 1234, task.name)
    mc = [r for item in items for r in builder.loglikelihood_requests(task, item, 0)]
    nll_task = load_task_file(write_nll_task(tmp_path))
    nll = [r for item in nll_task.items[:8] for r in builder.loglikelihood_requests(nll_task, item, 0)]
    adapter_mc = mc[: 4 * 8]   # the LoRA path: 8 MC questions and 8 chat-templated answers

    (tmp_path / "in.json").write_text(json.dumps({
        "dtype": "float32", "adapter_path": str(trained_adapters["medical"]),
        "base_requests": _as_rows(mc + nll), "adapter_requests": _as_rows(adapter_mc + nll)}))
    env = {**os.environ, "DOMAINLM_PROGRESS": "off"}
    run = subprocess.run([sys.executable, "-m", "tests.evals.vllm_worker", tmp_path / "in.json", tmp_path / "out.json"],
                         capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    vllm = json.loads((tmp_path / "out.json").read_text())

    adapter = adapter_subject(trained_adapters["medical"], base_model)
    hf = HFBackend(base_model, [BASE, adapter], HFConfig(dtype="float32", threads=THREADS), tokenizer)
    hf_base = hf.loglikelihood(BASE, encode_requests(tokenizer, mc + nll, 1023))
    hf_adapter = hf.loglikelihood(adapter, encode_requests(tokenizer, adapter_mc + nll, 1023))
    hf.close()

    assert abs(_accuracy(task, items, hf_base) - _accuracy(task, items, vllm["base"])) <= 1.0
    assert abs(_accuracy(task, items[:8], hf_adapter) - _accuracy(task, items[:8], vllm["adapter"])) <= 1.0
    for ours, theirs in ((hf_base, vllm["base"]), (hf_adapter, vllm["adapter"])):
        assert [r["tokens"] for r in ours] == [r["tokens"] for r in theirs]
        assert max(abs(a["logprob"] - b["logprob"]) for a, b in zip(ours, theirs, strict=True)) < 5e-3
    # the LoRA really applies in vLLM: the answers it was trained on gain log-likelihood there as in hf
    gain = {name: sum(r["logprob"] for r in adapter[32:]) - sum(r["logprob"] for r in base[len(mc):])
            for name, base, adapter in (("hf", hf_base, hf_adapter), ("vllm", vllm["base"], vllm["adapter"]))}
    assert gain["vllm"] > 10 and abs(gain["vllm"] - gain["hf"]) < 0.05
