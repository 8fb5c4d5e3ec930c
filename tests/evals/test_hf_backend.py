"""The hf backend on the real model: packed prefix-shared scoring equals plain per-request forwards (base and
LoRA adapter), tokenisation follows lm-eval, batched left-padded generation equals one-at-a-time generation."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoTokenizer

from domainlm.evals.backends.base import encode_requests, prefix_token
from domainlm.evals.backends.hf import HFBackend
from domainlm.evals.config import HFConfig
from domainlm.evals.prompts import LLRequest, PromptBuilder
from domainlm.evals.subjects import BASE, adapter_subject
from domainlm.evals.tasks import TaskContext, build_task
from domainlm.evals.tasks.base import Item, sample_items
from tests.evals.conftest import THREADS


@pytest.fixture(scope="module")
def tokenizer(base_model):
    return AutoTokenizer.from_pretrained(base_model.path)


def test_encoding_follows_lm_eval(tokenizer):
    whole = tokenizer("Answer: Paris")["input_ids"]
    ctx = tokenizer("Answer:")["input_ids"]
    [pair] = encode_requests(tokenizer, [LLRequest("Answer: ", "Paris")], max_length=2048)
    assert list(pair.context) == ctx and list(pair.continuation) == whole[len(ctx):]  # the space moved over
    [empty] = encode_requests(tokenizer, [LLRequest("", "Paris")], max_length=2048)
    assert list(empty.context) == [prefix_token(tokenizer)]
    [cut] = encode_requests(tokenizer, [LLRequest("word " * 100, " end")], max_length=16)
    assert len(cut.context) + len(cut.continuation) == 17  # lm-eval keeps the last max_length + 1 tokens
    [capped] = encode_requests(tokenizer, [LLRequest("Q:", " a b c d e f g", max_tokens=3)], max_length=2048)
    assert len(capped.continuation) == 3


def _separate_forward(model, pair) -> float:
    ids = torch.tensor([list(pair.context + pair.continuation)])
    with torch.inference_mode():
        logprobs = torch.log_softmax(model(input_ids=ids).logits[0].float(), dim=-1)
    n = len(pair.context)
    return sum(logprobs[n - 1 + i, t].item() for i, t in enumerate(pair.continuation))


@pytest.mark.parametrize("merge", ["on", "off"])
def test_packed_scores_equal_separate_forwards(base_model, random_adapters, tokenizer, merge):
    adapter = adapter_subject(random_adapters["medical"], base_model)
    task = build_task("medmcqa", TaskContext("medical", 1))
    builder = PromptBuilder(tokenizer)
    requests = [r for item in sample_items(task.items, 3, 1, "medmcqa") for r in builder.loglikelihood_requests(
        task, item, 0)] + [LLRequest("Question: What is anaemia?\nAnswer:", " Low haemoglobin in the blood.")]
    pairs = encode_requests(tokenizer, requests, 2048)
    # small rows force several rows per batch, and two rows per forward exercise padding between rows
    cfg = HFConfig(dtype="float32", pack_tokens=160, batch_rows=2, threads=THREADS, merge_adapters=merge)
    backend = HFBackend(base_model, [BASE, adapter], cfg, tokenizer)
    assert bool(backend.merged) == (merge == "on")
    for subject in (BASE, adapter):
        packed = backend.loglikelihood(subject, pairs)
        with backend._active(subject):
            expected = [_separate_forward(backend._model(subject), p) for p in pairs]
        assert [r["tokens"] for r in packed] == [len(p.continuation) for p in pairs]
        assert max(abs(r["logprob"] - e) for r, e in zip(packed, expected, strict=True)) < 2e-3
    base_scores = [r["logprob"] for r in backend.loglikelihood(BASE, pairs)]
    adapter_scores = [r["logprob"] for r in backend.loglikelihood(adapter, pairs)]
    moved = max(abs(a - b) for a, b in zip(base_scores, adapter_scores, strict=True))
    assert moved > 1e-2, "the adapter must change scores"


def test_batched_generation_equals_one_at_a_time(base_model, tokenizer):
    backend = HFBackend(base_model, [BASE], HFConfig(dtype="float32", gen_batch_size=3, threads=THREADS), tokenizer)
    task = build_task("medmcqa", TaskContext("medical", 1))
    builder = PromptBuilder(tokenizer, style="chat")
    items = sample_items(task.items, 2, 1, "medmcqa") + [Item(id="short", fields={"question": "Hi"})]
    requests = [builder.generate_request(task, item, 0, max_new_tokens=6) for item in items]  # different lengths
    together = backend.generate(BASE, requests)
    alone = [backend.generate(BASE, [r])[0] for r in requests]
    assert together == alone and all(isinstance(t, str) for t in together)


def test_prompt_styles_and_seeded_shots(tokenizer):
    task = build_task("mmlu_general", TaskContext("medical", 1), {"per_subject": 1})
    item = task.items[0]
    plain = PromptBuilder(tokenizer, style="plain", seed=5)
    [first, *_] = plain.loglikelihood_requests(task, item, 0)
    assert first.context.endswith("Answer:") and first.continuation == " A"   # letters with lm-eval's delimiter
    shots = plain.shots(task, item, 2)
    assert [s.id for s in shots] == [s.id for s in plain.shots(task, item, 2)]           # fixed seed
    assert all(s.fields["subject"] == item.fields["subject"] and s.id != item.id for s in shots)
    assert plain.loglikelihood_requests(task, item, 2)[0].context.count("Answer:") == 3
    chat = PromptBuilder(tokenizer, style="chat", system="You are terse.")
    [c0, *_] = chat.loglikelihood_requests(task, item, 1)
    assert c0.context.startswith("<|im_start|>system\nYou are terse.") and c0.context.endswith("assistant\n")
    assert c0.continuation == "A"                                                       # no delimiter in a chat turn
