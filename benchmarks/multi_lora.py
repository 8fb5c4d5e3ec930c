"""Multi-LoRA throughput on vLLM: three vertical adapters in one mixed batch vs the base model alone.

    python benchmarks/multi_lora.py [--prompts 48] [--max-tokens 64] [--variants paired-kernel,paired-dense,...]

Each variant runs in a fresh process with the offline engine (vllm.LLM, eager, greedy, ignore_eos so every
variant generates exactly prompts × max_tokens tokens) and prints output tokens/s and the ratio to `base`:

  paired-<ops>      ONE LoRA-enabled engine alternating base-only and mixed 3-adapter batches (--rounds pairs,
                    5 by default): the ratio least disturbed by a shared machine (median of the per-round
                    mixed / base ratios)
  lora-<ops>        3 adapters (r16, all linear projections) mixed in every batch, in its own engine
  base              the base model, no LoRA
  merged            per-vertical engines with the adapter merged into the weights: each runs its vertical's third
                    of the prompts, one after another (one 2-core CPU); same work as base on smaller batches

<ops>: `kernel` (domainlm's compiled per-token-slot kernel, kernels/ops/cpu_lora_kernel.cpp; the default of
the gateway's managed vLLM servers where the CPU has AVX512-BF16), `dense` (domainlm's two dense GEMMs per
projection, kernels/ops/vllm_cpu_lora.py) or `vllm-ops` (vLLM's own CPU LoRA ops). Suffix `-r8`: rank-8
adapters; `-1`: one adapter for every request.

Adapters are untrained with the training preset's shapes unless --adapters gives three artifact folders
(throughput depends on shapes, not on learned values). One run per variant; numbers are noisy on a shared CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# domainlm's CPU LoRA ops reach every vLLM process through its platform plugin (kernels/ops/vllm_plugin.py);
# DOMAINLM_VLLM_LORA_OPS (OPS_ENV below) picks the ops for each variant (vllm: vLLM's own CPU platform).
VERTICALS = ("petrochem", "medical", "marine")
OPS_ENV = {"vllm-ops": "vllm", "dense": "dense", "kernel": "auto"}  # DOMAINLM_VLLM_LORA_OPS per variant
PROMPT = "Question {i}: explain one important idea from your field of expertise, step by step."


def worker(spec: dict) -> dict:
    """Runs inside a fresh process: build the engine, warm it up, time one generate() over all prompts."""
    from vllm import LLM, SamplingParams
    from vllm.lora.request import LoRARequest

    adapters = spec["adapters"]
    kwargs = {"enable_lora": True, "max_loras": max(3, len(adapters)), "max_lora_rank": spec["rank"]} \
        if adapters else {}
    llm = LLM(model=spec["model"], enforce_eager=True, max_model_len=1024, dtype=spec["dtype"], seed=0,
              max_num_seqs=spec["prompts"], **kwargs)
    params = SamplingParams(temperature=0.0, max_tokens=spec["max_tokens"], ignore_eos=True)
    prompts = [PROMPT.format(i=i) for i in range(spec["prompts"])]
    loras = [LoRARequest(f"a{i}", i + 1, path) for i, path in enumerate(adapters)]
    requests = [loras[i % len(loras)] for i in range(len(prompts))] if loras else None
    llm.generate(prompts[: max(4, len(loras))], SamplingParams(max_tokens=4),
                 lora_request=requests[: max(4, len(loras))] if requests else None, use_tqdm=False)

    def timed(lora_requests) -> tuple[int, float]:
        started = time.perf_counter()
        outputs = llm.generate(prompts, params, lora_request=lora_requests, use_tqdm=False)
        return sum(len(o.outputs[0].token_ids) for o in outputs), time.perf_counter() - started

    if not spec.get("paired"):
        tokens, seconds = timed(requests)
        return {"tokens": tokens, "seconds": seconds}
    # paired: base-only and mixed-adapter batches alternate on the same engine, so machine noise hits both
    rounds = {"base": [], "mixed": []}
    for _ in range(spec.get("rounds", 3)):
        for kind, lora_requests in (("base", None), ("mixed", requests)):
            tokens, seconds = timed(lora_requests)
            rounds[kind].append(tokens / seconds)
    return {"tokens": tokens, "seconds": seconds, "rounds": rounds}


def run_variant(spec: dict, env: dict, work: Path) -> dict:
    path = work / f"spec-{time.time_ns()}.json"
    path.write_text(json.dumps(spec))
    result = subprocess.run([sys.executable, __file__, "--worker", str(path)], capture_output=True, text=True,
                            env={**os.environ, **env, "DOMAINLM_BENCH_WORKER": "1"}, timeout=1800, check=False)
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    if result.returncode != 0 or not lines:
        raise RuntimeError(f"variant failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return json.loads(lines[-1][7:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=48)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5, help="alternating base/mixed rounds of the paired variants")
    parser.add_argument("--variants", default="paired-kernel,paired-dense,paired-kernel-r8,base,lora-kernel,merged")
    parser.add_argument("--adapters", default=None, help="three artifact folders, comma-separated (default: "
                                                         "untrained r16 adapters with the training preset)")
    parser.add_argument("--dtype", default="auto", choices=["auto", "bfloat16", "float32"],
                        help="engine dtype (auto: bf16 where this CPU has it natively, else fp32)")
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print("RESULT " + json.dumps(worker(json.loads(Path(args.worker).read_text()))), flush=True)
        return

    from benchmarks.serving_common import untrained_adapter
    from domainlm.kernels.backends import select_backend
    from domainlm.models import resolve_base

    work = Path(args.workdir or tempfile.mkdtemp(prefix="multi-lora-"))
    base = resolve_base()
    if args.adapters:
        r16 = args.adapters.split(",")
    else:
        r16 = [str(untrained_adapter(work / f"{v}-r16", base, v, seed=i)) for i, v in enumerate(VERTICALS)]
    env = {**select_backend().serving_env(), "VLLM_CPU_KVCACHE_SPACE": "2"}
    from domainlm.kernels.dtypes import resolve_dtype

    dtype = resolve_dtype(args.dtype, "cpu")
    print(f"engine dtype {dtype}", flush=True)
    common = {"model": str(base.path), "prompts": args.prompts, "max_tokens": args.max_tokens, "rank": 16,
              "dtype": dtype}
    results: dict[str, dict] = {}
    paired: dict[str, dict] = {}
    for variant in args.variants.split(","):
        started = time.perf_counter()
        if variant == "base":
            results[variant] = run_variant({**common, "adapters": []}, env, work)
        elif variant.startswith(("paired-", "lora-")):
            kind, _, rest = variant.partition("-")
            rank = 8 if rest.endswith("-r8") else 16
            ops = rest.removesuffix("-r8").removesuffix("-1")
            if ops not in OPS_ENV:
                raise SystemExit(f"unknown variant {variant} (ops: {', '.join(OPS_ENV)})")
            adapters = r16 if rank == 16 else [str(untrained_adapter(work / f"{v}-r8", base, v, seed=i, rank=8))
                                               for i, v in enumerate(VERTICALS)]
            spec = {**common, "adapters": adapters[:1] if rest.endswith("-1") else adapters, "rank": rank}
            ops_env = {**env, "DOMAINLM_VLLM_LORA_OPS": OPS_ENV[ops]}
            if kind == "lora":
                results[variant] = run_variant(spec, ops_env, work)
            else:
                paired[variant] = run_variant({**spec, "paired": True, "rounds": args.rounds}, ops_env, work)
                rounds = paired[variant]["rounds"]
                print(f"{variant:16s} base-only {[round(r) for r in rounds['base']]} tok/s, mixed 3-adapter "
                      f"{[round(r) for r in rounds['mixed']]} tok/s, per-round ratios "
                      f"{[round(m / b, 2) for m, b in zip(rounds['mixed'], rounds['base'], strict=True)]}",
                      flush=True)
                continue
        elif variant == "merged":
            results[variant] = merged(common, r16, env, work)
        else:
            raise SystemExit(f"unknown variant {variant}")
        r = results[variant]
        print(f"{variant:15s} {r['tokens'] / r['seconds']:8.1f} tok/s  ({r['tokens']} tokens in {r['seconds']:.1f} s;"
              f" variant took {time.perf_counter() - started:.0f} s)", flush=True)
    for variant, r in paired.items():
        print(f"{variant}: mixed 3-adapter batch / base-only batch on the same engine = "
              f"{paired_ratio(r['rounds']):.2f}x (median of {len(r['rounds']['base'])} alternating rounds)")
    if "base" in results:
        base_rate = results["base"]["tokens"] / results["base"]["seconds"]
        print(f"\nprompts={args.prompts} max_tokens={args.max_tokens}, ratio to base-only throughput:")
        for variant, r in results.items():
            print(f"  {variant:15s} {r['tokens'] / r['seconds'] / base_rate:6.2f}x")


def paired_ratio(rounds: dict) -> float:
    """Median over rounds of mixed / base, each pair measured back to back on one engine."""
    return median(m / b for m, b in zip(rounds["mixed"], rounds["base"], strict=True))


def merged(common: dict, adapters: list[str], env: dict, work: Path) -> dict:
    """Per-vertical merged engines, each on its third of the prompts, run one after another."""
    from domainlm.artifacts import artifact_id, read_manifest
    from domainlm.artifacts.merge import cached_merge

    total = {"tokens": 0, "seconds": 0.0}
    share = common["prompts"] // len(adapters)
    for i, path in enumerate(adapters):
        folder = cached_merge(Path(path), artifact_id(read_manifest(path)), common["model"], work / "merged", f"v{i}-1")
        r = run_variant({**common, "model": str(folder), "prompts": share, "adapters": []}, env, work)
        total["tokens"] += r["tokens"]
        total["seconds"] += r["seconds"]
    return total


if __name__ == "__main__":
    main()
