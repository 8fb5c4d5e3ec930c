"""CUDA path of the hf backend (runs where a GPU is present): batched packed rows (16 per forward, padded) score
exactly what plain per-request forwards score, for the base and a LoRA adapter."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoTokenizer

from domainlm.evals.backends.base import encode_requests
from domainlm.evals.backends.hf import HFBackend
from domainlm.evals.config import HFConfig
from domainlm.evals.prompts import PromptBuilder
from domainlm.evals.subjects import BASE, adapter_subject
from domainlm.evals.tasks import TaskContext, build_task
from domainlm.evals.tasks.base import sample_items

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


def test_packed_batches_on_cuda_equal_plain_forwards(base_model, random_adapters):
    tokenizer = AutoTokenizer.from_pretrained(base_model.path)
    task = build_task("medmcqa", TaskContext("medical", 1))
    builder = PromptBuilder(tokenizer)
    pairs = encode_requests(tokenizer, [r for item in sample_items(task.items, 24, 1, "medmcqa")
                                        for r in builder.loglikelihood_requests(task, item, 0)], 2048)
    adapter = adapter_subject(random_adapters["medical"], base_model)
    backend = HFBackend(base_model, [BASE, adapter], HFConfig(dtype="float32", device="cuda", pack_tokens=256),
                        tokenizer, deterministic=False)
    assert backend.device == "cuda" and backend.batch_rows == 16
    for subject in (BASE, adapter):
        packed = backend.loglikelihood(subject, pairs)
        with backend._active(subject), torch.inference_mode():
            for pair, result in zip(pairs, packed, strict=True):
                ids = torch.tensor([list(pair.context + pair.continuation)], device="cuda")
                logprobs = torch.log_softmax(backend.model(input_ids=ids).logits[0].float(), dim=-1)
                n = len(pair.context)
                plain = sum(logprobs[n - 1 + i, t].item() for i, t in enumerate(pair.continuation))
                assert abs(plain - result["logprob"]) < 2e-3
