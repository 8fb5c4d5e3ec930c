"""The device check behind scripts/device_check.sh: run the selected backend end to end, write one JSON record.

Checks (each pass / fail / skip with a reason, timed):
  detection          select_backend() picks a backend, and probing left the device uninitialised
  describe           describe(live=True): device name, count, bf16 query, memory
  bf16_autocast      a matmul under backend.autocast(bfloat16) is bf16 and matches fp32 within 2%
  dist_one_rank      a one-rank process group on the backend's collective (nccl on CUDA, gloo on CPU) all-reduces
  tiny_model         a random 2-layer llama + byte-level BPE tokenizer and a random LoRA (peft), built offline
  hf_generate        the in-process engine (transformers+peft, the serving fallback) generates, and the LoRA
                     changes the logits
  vllm_generate      vLLM (in a fresh process, env from serving_env(), args from vllm_engine_args()) generates
  vllm_generate_lora the same engine with a LoRARequest changes the output (skipped where vLLM or LoRA is absent)

The record is what `python -m domainlm.kernels.backends.verified add` accepts into verified_on.json.
Usage: python -m domainlm.pipeline.device_check --out RECORD.json [--expect cuda] [--skip vllm]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

from domainlm.atomic import atomic_write_json
from domainlm.ports import free_port
from domainlm.serving.engines.lora_mode import lora_serving_mode, vllm_engine_args

PROMPT = "the quick brown fox"
CORPUS = ["the quick brown fox jumps over the lazy dog", "hello world, this is a tiny tokenizer",
          "domain models for medicine, petrochemicals and marine engineering", "0123456789 .,;:!?"]


class Skip(Exception):
    """A check that cannot run here; the message says why."""


def run_check(checks: dict, name: str, func, *args):
    started = time.perf_counter()
    try:
        detail = func(*args)
        checks[name] = {"status": "pass", "detail": detail}
    except Skip as exc:
        checks[name] = {"status": "skip", "reason": str(exc)}
        detail = None
    except Exception as exc:  # noqa: BLE001 — a failed check is recorded, the remaining checks still run
        checks[name] = {"status": "fail", "error": f"{type(exc).__name__}: {exc}",
                        "traceback": traceback.format_exc(limit=6)}
        detail = None
    checks[name]["seconds"] = round(time.perf_counter() - started, 2)
    print(f"[device_check] {name}: {checks[name]['status']} "
          f"{checks[name].get('reason') or checks[name].get('error') or ''}".rstrip(), flush=True)
    return detail


# ---- checks ---------------------------------------------------------------------------------------------------
def check_detection(expect: str | None) -> dict:
    import torch

    from domainlm.kernels.backends import all_backends, select_backend

    backend = select_backend()
    probes = {b.name: b.probe_report()[1] for b in all_backends()}
    cuda_initialised = torch.cuda.is_initialized()
    if cuda_initialised:
        raise AssertionError("probing initialised CUDA")
    if expect and backend.name != expect:
        raise AssertionError(f"selected {backend.name}, expected {expect}")
    return {"selected": backend.name, "probes": probes, "cuda_initialised_after_probe": cuda_initialised}


def check_describe(backend) -> dict:
    live = backend.describe(live=True)["live"]
    errors = {k: v for k, v in live.items() if isinstance(v, str) and v.startswith("error:")}
    if errors:
        raise AssertionError(f"live queries failed: {errors}")
    return live


def check_bf16_autocast(backend) -> dict:
    import torch

    device = backend.device()
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(256, 256, generator=generator).to(device)
    b = torch.randn(256, 256, generator=generator).to(device)
    reference = a @ b
    with backend.autocast(torch.bfloat16):
        out = a @ b
    backend.synchronize()
    rel = ((out.float() - reference).norm() / reference.norm()).item()
    if out.dtype != torch.bfloat16:
        raise AssertionError(f"autocast produced {out.dtype}, not bfloat16")
    if rel > 0.02:
        raise AssertionError(f"bf16 result off by {rel:.4f} (relative) from fp32")
    return {"supports_bf16": backend.supports_bf16(), "dtype": str(out.dtype), "relative_error": round(rel, 5)}


def check_dist_one_rank(backend) -> dict:
    import torch
    import torch.distributed as dist

    group_env = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()), "RANK": "0", "WORLD_SIZE": "1",
                 "LOCAL_RANK": "0"}
    saved = {k: os.environ.get(k) for k in group_env}
    os.environ.update(group_env)
    try:
        rank, world = backend.init_distributed()
        tensor = torch.full((4,), 3.0, device=backend.device())
        dist.all_reduce(tensor)
        backend.synchronize()
        if tensor.cpu().tolist() != [3.0] * 4:
            raise AssertionError(f"all_reduce gave {tensor.cpu().tolist()}")
        return {"backend": dist.get_backend(), "rank": rank, "world_size": world}
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
        for key, value in saved.items():  # the vLLM step's processes must not inherit this one-rank group
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def build_tiny_model(folder: Path) -> dict:
    """Random tiny llama + tokenizer in folder/model, random LoRA in folder/lora; fully offline."""
    import torch
    from peft import LoraConfig, get_peft_model
    from tokenizers import ByteLevelBPETokenizer
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    model_dir, lora_dir = folder / "model", folder / "lora"
    raw = ByteLevelBPETokenizer()
    raw.train_from_iterator(CORPUS, vocab_size=320, min_frequency=1, special_tokens=["<s>", "</s>", "<pad>"])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=raw, bos_token="<s>", eos_token="</s>", pad_token="<pad>")
    tokenizer.save_pretrained(model_dir)
    torch.manual_seed(0)
    # head_dim 64: a size every attention backend (vLLM CPU included) supports.
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=256,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=False, torch_dtype="bfloat16")
    model = LlamaForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(model_dir, safe_serialization=True)
    lora = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"],
                                            init_lora_weights=False, task_type="CAUSAL_LM"))
    lora.save_pretrained(lora_dir)
    return {"model": str(model_dir), "lora": str(lora_dir), "vocab": len(tokenizer),
            "params": sum(p.numel() for p in model.parameters())}


def check_hf_generate(backend, tiny: dict | None) -> dict:
    if tiny is None:
        raise Skip("tiny_model did not build")
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dtype = torch.bfloat16 if backend.supports_bf16() else torch.float32
    device = backend.device()
    tokenizer = AutoTokenizer.from_pretrained(tiny["model"])
    model = AutoModelForCausalLM.from_pretrained(tiny["model"], dtype=dtype).to(device).eval()
    inputs = tokenizer(PROMPT, return_tensors="pt").to(device)
    with torch.no_grad():
        base_logits = model(**inputs).logits.float()
        base_ids = model.generate(**inputs, max_new_tokens=8, do_sample=False)
        tuned = PeftModel.from_pretrained(model, tiny["lora"]).eval()
        lora_logits = tuned(**inputs).logits.float()
        lora_ids = tuned.generate(**inputs, max_new_tokens=8, do_sample=False)
    delta = (lora_logits - base_logits).abs().max().item()
    if delta < 1e-3:
        raise AssertionError(f"LoRA did not change the logits (max |delta| {delta})")
    new = base_ids.shape[1] - inputs["input_ids"].shape[1]
    return {"dtype": str(dtype), "new_tokens": int(new), "lora_max_logit_delta": round(delta, 4),
            "same_greedy_tokens": bool(torch.equal(base_ids, lora_ids))}


def run_vllm(backend, tiny: dict) -> dict:
    """Start vLLM in a fresh process (the parent already holds a device context) and generate with/without LoRA."""
    env = {**os.environ, **backend.serving_env()}
    args = {**vllm_engine_args(backend), "enforce_eager": True}
    payload = json.dumps({"tiny": tiny, "args": args})
    result = subprocess.run([sys.executable, "-m", "domainlm.pipeline.device_check", "--vllm-worker", payload],
                            env=env, check=False, capture_output=True, text=True, timeout=300)
    lines = [line for line in result.stdout.splitlines() if line.startswith("VLLM_RESULT ")]
    if result.returncode != 0 or not lines:
        raise AssertionError(f"vLLM worker exited {result.returncode}: {result.stderr[-1500:]}")
    return json.loads(lines[-1][len("VLLM_RESULT "):])


def vllm_worker(payload: str) -> None:
    from vllm import LLM, SamplingParams
    from vllm.lora.request import LoRARequest

    spec = json.loads(payload)
    tiny, args = spec["tiny"], spec["args"]
    started = time.perf_counter()
    llm = LLM(model=tiny["model"], max_model_len=128, max_lora_rank=8, max_num_seqs=4, seed=0,
              gpu_memory_utilization=0.3, **args)
    startup = time.perf_counter() - started
    params = SamplingParams(max_tokens=8, temperature=0.0, logprobs=5)

    def first(outputs):
        completion = outputs[0].outputs[0]
        top = completion.logprobs[0] if completion.logprobs else {}
        return list(completion.token_ids), {str(k): round(v.logprob, 4) for k, v in top.items()}

    base_ids, base_top = first(llm.generate([PROMPT], params))
    result = {"engine_args": args, "startup_s": round(startup, 1), "base_tokens": len(base_ids)}
    if args.get("enable_lora"):
        lora_ids, lora_top = first(llm.generate([PROMPT], params, lora_request=LoRARequest("tiny", 1, tiny["lora"])))
        result.update(lora_tokens=len(lora_ids), lora_changed_output=(lora_ids != base_ids or lora_top != base_top))
    print("VLLM_RESULT " + json.dumps(result), flush=True)


def check_vllm(backend, tiny: dict | None, skip: set[str], state: dict) -> dict:
    from domainlm.kernels.backends import probes

    if "vllm" in skip:
        raise Skip("skipped with --skip vllm")
    if not probes.module_present("vllm"):
        raise Skip("vllm is not installed on this machine")
    if not backend.vllm_installed():
        raise Skip(f"{backend.vllm_plugin.package} is not installed on this machine")
    if tiny is None:
        raise Skip("tiny_model did not build")
    result = run_vllm(backend, tiny)
    state["vllm"] = result
    if result["base_tokens"] < 1:
        raise AssertionError("vLLM generated no tokens")
    return {k: v for k, v in result.items() if not k.startswith("lora_")}


def check_vllm_lora(backend, state: dict) -> dict:
    result = state.get("vllm")
    if result is None:
        raise Skip("vllm_generate did not run")
    mode, reason = lora_serving_mode(backend)
    if mode != "vllm-lora":
        raise Skip(f"LoRA serving mode here is {mode}: {reason}")
    if not result.get("lora_changed_output"):
        raise AssertionError(f"the LoRA request did not change vLLM's output: {result}")
    return {"lora_tokens": result["lora_tokens"], "lora_changed_output": True}


# ---- record ---------------------------------------------------------------------------------------------------
def driver_version(backend) -> str:
    if backend.device_type == "cpu":
        return f"linux {platform.release()}"
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             check=False, capture_output=True, text=True, timeout=30)
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip().splitlines()[0]
    except (OSError, subprocess.TimeoutExpired):
        pass
    return "unknown"


def versions() -> dict:
    from domainlm.kernels.backends.plugins import module_installed

    return {name: module_installed(name) for name in ("torch", "vllm", "transformers", "peft", "accelerate")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m domainlm.pipeline.device_check")
    parser.add_argument("--out", type=Path, help="where to write the JSON record")
    parser.add_argument("--expect", default=None, help="fail detection unless this backend is selected")
    parser.add_argument("--skip", action="append", default=[], choices=["vllm"], help="leave a step out")
    parser.add_argument("--vllm-worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.vllm_worker:
        vllm_worker(args.vllm_worker)
        return 0
    if args.out is None:
        parser.error("--out is required")

    import torch

    from domainlm import __version__
    from domainlm.kernels.backends import select_backend

    checks: dict = {}
    state: dict = {}
    detection = run_check(checks, "detection", check_detection, args.expect)
    backend = select_backend() if detection else None
    if backend is None:
        live, tiny = {}, None
    else:
        live = run_check(checks, "describe", check_describe, backend) or {}
        run_check(checks, "bf16_autocast", check_bf16_autocast, backend)
        run_check(checks, "dist_one_rank", check_dist_one_rank, backend)
        with tempfile.TemporaryDirectory(prefix="domainlm-device-check-") as tmp:
            tiny = run_check(checks, "tiny_model", build_tiny_model, Path(tmp))
            run_check(checks, "hf_generate", check_hf_generate, backend, tiny)
            run_check(checks, "vllm_generate", check_vllm, backend, tiny, set(args.skip), state)
            run_check(checks, "vllm_generate_lora", check_vllm_lora, backend, state)
    record = {
        "backend": backend.name if backend else None,
        "hardware": live.get("device_name") if isinstance(live, dict) else None,
        "device_count": live.get("device_count") if isinstance(live, dict) else None,
        "driver": driver_version(backend) if backend else None,
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "python": platform.python_version(),
        "os": platform.platform(),
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "domainlm_version": __version__,
        "versions": versions(),
        "script": "scripts/device_check.sh",
        "checks": checks,
        "passed": sorted(n for n, c in checks.items() if c["status"] == "pass"),
    }
    atomic_write_json(args.out, record)
    failed = sorted(n for n, c in checks.items() if c["status"] == "fail")
    print(f"[device_check] backend={record['backend']} hardware={record['hardware']} passed={record['passed']} "
          f"failed={failed} -> {args.out}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
