"""Helpers shared by the serving benchmarks: LoRA adapters for throughput runs, a managed vLLM server, percentiles.

Throughput does not depend on what the LoRA weights learned, only on their shapes (rank, target modules), so the
benchmarks can use untrained adapters with the training preset's shapes when no trained ones are given.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import httpx

from domainlm.ports import free_port  # noqa: F401  (re-exported for the benchmarks)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q / 100
    low, high = math.floor(k), math.ceil(k)
    return ordered[low] + (ordered[high] - ordered[low]) * (k - low)


def untrained_adapter(dest: Path, base, vertical: str, seed: int, rank: int = 16) -> Path:
    """A PEFT artifact with the training preset's targets (all linear projections) and random non-zero B.
    Labelled untrained in its manifest; used only to measure speed."""
    if (dest / "manifest.json").is_file():
        return dest
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from domainlm.artifacts import write_artifact
    from domainlm.training.presets import LLAMA_LIKE

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base.path, dtype=torch.bfloat16)
    peft_model = get_peft_model(model, LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=list(LLAMA_LIKE),
                                                  lora_dropout=0.0, task_type="CAUSAL_LM"))
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.normal_(0.0, 0.01)

    def populate(tmp: Path) -> None:
        peft_model.save_pretrained(tmp)
        (tmp / "README.md").unlink(missing_ok=True)

    write_artifact(dest, populate, name=f"bench-{vertical}-r{rank}", vertical=vertical,
                   base={"model_id": base.model_id, "weights_sha256": base.weights_sha256,
                         "chat_template_sha256": base.chat_template_sha256},
                   data_sources=[], config={"note": "untrained adapter for throughput benchmarks", "r": rank},
                   metrics={})
    return dest


def start_vllm(model_path: str, served: str, lora: dict[str, str], log_path: Path, rank: int = 16,
               kv_gib: float = 2.0, max_loras: int = 4, wait: bool = True):
    """A managed vLLM OpenAI server (the same process manager the gateway uses); returns (process, url). Start it
    from the main thread: the server is tied to the life of the thread that started it (children.die_with_parent).
    `wait=False` returns at once (start several, then wait_http on each)."""
    from domainlm.kernels.backends import select_backend
    from domainlm.serving.engines.lora_mode import vllm_engine_args
    from domainlm.serving.engines.vllm_process import ProcessSpec, VllmProcess

    backend = select_backend()
    env = {**backend.serving_env(), "VLLM_CPU_KVCACHE_SPACE": f"{kv_gib:g}"}
    port = free_port()
    spec = ProcessSpec(model_path=model_path, served_names=[served], port=port, lora_modules=lora,
                       enable_lora=bool(lora), max_loras=max_loras, max_lora_rank=rank, max_model_len=2048,
                       backend_args=vllm_engine_args(backend), env=env)
    process = VllmProcess(spec, log_path)
    process.start()
    url = f"http://127.0.0.1:{port}"
    if wait:
        wait_http(url + "/health", 600, process)
    return process, url


def wait_http(url: str, timeout: float, process=None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and hasattr(process, "alive") and not process.alive():
            raise RuntimeError(f"process for {url} exited; log tail:\n{process.tail(30)}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{url} not ready after {timeout:.0f} s")
