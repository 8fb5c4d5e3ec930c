"""Two verticals in interleaved concurrent requests through the gateway give the same greedy text as offline vLLM
(vllm.LLM in its own process) with the same adapters and the same messages."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from openai import OpenAI

from domainlm.kernels.backends import select_backend
from domainlm.serving.engines.lora_mode import vllm_engine_args
from domainlm.verticals.policy import apply_policy, post_process

pytestmark = pytest.mark.slow

QUESTIONS = {
    "medical": ["What are common symptoms of anemia?", "How is type 2 diabetes diagnosed?",
                "What does a high white blood cell count mean?"],
    "petrochem": ["What is catalytic cracking?", "Why is hydrotreating used in refineries?",
                  "What is the flash point of a fuel?"],
}
MAX_TOKENS = 24


def test_interleaved_verticals_match_offline_vllm(gateway, serving_stack, base_model, tmp_path):
    url, key = gateway
    client = OpenAI(base_url=url + "/v1", api_key=key, max_retries=0, timeout=300)
    jobs = [(v, q) for pair in zip(QUESTIONS["medical"], QUESTIONS["petrochem"], strict=True) for v, q in
            zip(("medical", "petrochem"), pair, strict=True)]  # medical, petrochem, medical, ... sent at once

    def ask(job):
        vertical, question = job
        answer = client.chat.completions.create(model=vertical, messages=[{"role": "user", "content": question}],
                                                max_tokens=MAX_TOKENS, temperature=0)
        return answer.model, answer.choices[0].message.content

    with ThreadPoolExecutor(len(jobs)) as pool:
        served = list(pool.map(ask, jobs))

    registry = serving_stack.service.registry
    refs = {v: registry.get(v) for v in QUESTIONS}
    requests = []
    for vertical, question in jobs:
        messages, _ = apply_policy(vertical, [{"role": "user", "content": question}], "en")
        requests.append({"adapter": refs[vertical].ref, "messages": messages})
    base_requests = [{"adapter": None, "messages": r["messages"]} for r in requests[:2]]
    # the dtype the gateway's vLLM replica was started with (bf16 where the CPU has it natively, else fp32): greedy
    # text is only comparable within one dtype
    dtype = vllm_engine_args(select_backend())["dtype"]
    spec = {"model": str(base_model.path), "adapters": {e.ref: str(e.path) for e in refs.values()},
            "requests": requests + base_requests, "max_tokens": MAX_TOKENS, "dtype": dtype}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    # engine core in the script's own process: no engine and worker processes to spawn (measured 51 s → 24 s)
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "CUDA_VISIBLE_DEVICES": "",
           "VLLM_ENABLE_V1_MULTIPROCESSING": "0"}
    result = subprocess.run([sys.executable, str(Path(__file__).with_name("offline_vllm.py")),
                             str(tmp_path / "spec.json"), str(tmp_path / "out.json")],
                            capture_output=True, text=True, timeout=600, env=env, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    # vLLM picked domainlm's CPU platform in the offline engine too: both sides compute LoRA with the same ops
    if os.environ.get("DOMAINLM_VLLM_LORA_OPS", "auto") != "vllm":
        assert "punica wrapper: domainlm.kernels.ops.vllm_cpu_punica.DomainlmPunicaWrapperCPU" in result.stderr, \
            result.stderr[-3000:]
    offline = json.loads((tmp_path / "out.json").read_text())
    offline, base_answers = offline[:len(requests)], offline[len(requests):]

    for (vertical, question), (model, text), reference, request in zip(jobs, served, offline, requests, strict=True):
        assert model == refs[vertical].ref
        assert reference.strip(), "offline vLLM produced an empty answer"
        expected = post_process(vertical, reference, "en", apply_policy(vertical, request["messages"], "en")[1])
        assert text == expected, f"{vertical} ({dtype}): {question}\n gateway: {text!r}\n offline: {expected!r}"
    # the adapters really change the answers (the comparison is not base against base)
    assert base_answers != offline[:2]
