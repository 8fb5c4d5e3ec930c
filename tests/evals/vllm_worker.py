"""Subprocess half of test_vllm.py: score given requests with the vllm backend (one offline engine, LoRARequest,
prompt_logprobs) and write the results as JSON. Kept out of the pytest process: the engine pins CPU threads.

    python -m tests.evals.vllm_worker IN.json OUT.json
"""

from __future__ import annotations

import json
import sys
import time


def main(source: str, target: str) -> None:
    from transformers import AutoTokenizer

    from domainlm.evals.backends.base import encode_requests
    from domainlm.evals.backends.vllm import VLLMBackend
    from domainlm.evals.config import VLLMConfig
    from domainlm.evals.prompts import LLRequest
    from domainlm.evals.subjects import BASE, adapter_subject
    from domainlm.models import resolve_base

    job = json.loads(open(source).read())
    base = resolve_base()
    adapter = adapter_subject(job["adapter_path"], base)
    tokenizer = AutoTokenizer.from_pretrained(base.path)
    cfg = VLLMConfig(dtype=job["dtype"], max_model_len=1024, kv_cache_gib=1, max_num_seqs=32)
    started = time.time()
    backend = VLLMBackend(base, [BASE, adapter], cfg, tokenizer, seed=0)
    out = {"engine_seconds": time.time() - started}
    for name, subject in (("base", BASE), ("adapter", adapter)):
        requests = [LLRequest(*r) for r in job[f"{name}_requests"]]
        started = time.time()
        out[name] = backend.loglikelihood(subject, encode_requests(tokenizer, requests, cfg.max_model_len - 1))
        out[f"{name}_seconds"] = time.time() - started
    open(target, "w").write(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
