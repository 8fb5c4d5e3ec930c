"""Training throughput: domainlm's trainer vs a plain HF Trainer + PEFT script, same model/data/length/rank/steps.

    python benchmarks/train_throughput.py [--steps 20] [--batch-size 8] [--max-length 512] [--rank 16]
                                          [--dtype auto|bfloat16|float32]

Both runs get the same MedQuAD rows (real data from ../shared/data), rendered by the base model's chat template
with loss on answer tokens, in the same order (step k trains rows 8k … 8k+7 in both), the same LoRA (r, alpha,
targets), AdamW, lr, cosine schedule, warmup and clipping, and dtype: `--dtype auto` (the default) is what a user
picks on this CPU, bf16 where it is native (AVX512-BF16 / AMX) and fp32 elsewhere (AVX2-only CPUs emulate bf16
slowly). The baseline is what a user writes: the model in that dtype, `get_peft_model`, `Trainer(bf16=...)`,
`DataCollatorForSeq2Seq` padding to the longest row of each batch.
Each side runs in its own fresh process (clean peak RSS), back to back, so a busy machine slows both alike.

Printed: tokens/s over real (non-padding) tokens excluding the first `--skip` steps, peak RSS, final loss (mean of
the last 5 step losses, token-weighted within a step), MFU against a matmul peak in the run's dtype measured in the
same run, and the ratios domainlm / baseline. With `--rounds N` both sides run N times, in alternating order, and
the tokens/s ratio is the median of the per-round ratios (each printed), as one pair on a noisy machine moves by ±5 %.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from domainlm.kernels.dtypes import resolve_dtype  # noqa: E402  (after the path insert)
from domainlm.kernels.host import cpu_class  # noqa: E402

MEDQUAD = "medquad/medquad_with_answers.part01.jsonl"


# ---- shared inputs ---------------------------------------------------------------------------------------------------
def write_rows(path: Path, count: int) -> None:
    """The first `count` MedQuAD question/answer pairs as chat rows."""
    from domainlm.paths import data_root

    rows = []
    with open(data_root() / MEDQUAD, encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            if row.get("question") and row.get("answer", "").strip():
                rows.append({"messages": [{"role": "user", "content": row["question"]},
                                          {"role": "assistant", "content": row["answer"].strip()}]})
            if len(rows) == count:
                break
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def encode_rows(path: Path, tokenizer, max_length: int):
    from domainlm.data.encode import ChatEncoder

    encoder = ChatEncoder(tokenizer, max_length, truncate=True)
    return [encoder.encode(json.loads(line)["messages"]) for line in path.read_text().splitlines()]


def model_flops(encoded, config, lora_params: int, lm_head: bool = True) -> float:
    """Useful training FLOPs for these rows: frozen-weight GEMMs fwd + input-grad bwd (4·P per token), the lm-head
    only where a loss is taken, LoRA fwd+bwd (6·P_lora), causal attention 6·L²·d per layer (fwd 2, bwd 4)."""
    h, layers, vocab = config.hidden_size, config.num_hidden_layers, config.vocab_size
    heads = config.num_attention_heads
    kv = getattr(config, "num_key_value_heads", heads)
    d = getattr(config, "head_dim", None) or h // heads
    inter = config.intermediate_size
    body = layers * (h * d * (heads + 2 * kv) + heads * d * h + 3 * h * inter)
    tokens = sum(len(e) for e in encoded)
    targets = sum(e.n_targets for e in encoded)
    attention = sum(6 * layers * len(e) ** 2 * heads * d for e in encoded)
    return 4 * body * tokens + (4 * vocab * h * targets if lm_head else 0) + 6 * lora_params * tokens + attention


def matmul_peak(dtype_name: str = "bfloat16", seconds: float = 3.0) -> float:
    """Best GEMM rate (FLOP/s) in this dtype over a few square and model-shaped problems, in this process."""
    import torch

    dtype = getattr(torch, dtype_name)
    best = 0.0
    for m, k, n in ((2048, 2048, 2048), (4096, 576, 1536), (4096, 1536, 576)):
        a, b = torch.randn(m, k, dtype=dtype), torch.randn(k, n, dtype=dtype)
        a @ b
        reps, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds / 3:
            a @ b
            reps += 1
        best = max(best, 2 * m * k * n * reps / (time.perf_counter() - started))
    return best


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6   # Linux: KiB → GB


# ---- the two sides (each in its own process) ---------------------------------------------------------------------
def run_baseline(args) -> dict:
    """A plain HF Trainer + PEFT script, written the way a user would."""
    import torch
    from peft import LoraConfig, get_peft_model
    from torch.utils.data import SequentialSampler
    from transformers import (AutoModelForCausalLM, AutoTokenizer, DataCollatorForSeq2Seq, Trainer, TrainerCallback,
                              TrainingArguments)

    from domainlm.data.encode import IGNORE
    from domainlm.models import resolve_base
    from domainlm.training.presets import PRESETS

    base = resolve_base(args.model)
    tokenizer = AutoTokenizer.from_pretrained(base.path)
    encoded = encode_rows(Path(args.rows), tokenizer, args.max_length)
    labels = []
    for e in encoded:   # HF convention: labels aligned with input_ids, shifted inside the model
        row = [IGNORE] * len(e)
        for i in range(1, len(e)):
            if e.targets[i - 1] != IGNORE:
                row[i] = int(e.input_ids[i])
        labels.append(row)
    dataset = [{"input_ids": e.input_ids.tolist(), "labels": label} for e, label in zip(encoded, labels, strict=True)]
    model = AutoModelForCausalLM.from_pretrained(base.path, dtype=getattr(torch, args.dtype))
    model = get_peft_model(model, LoraConfig(r=args.rank, lora_alpha=2 * args.rank, lora_dropout=0.0,
                                             target_modules=list(PRESETS[base.family].targets),
                                             task_type="CAUSAL_LM"))

    class InOrder(Trainer):   # the only change from a stock script: rows in file order, as the other side
        def _get_train_sampler(self, *unused, **kwargs):
            return SequentialSampler(self.train_dataset)

    steps: list[dict] = []

    class Timer(TrainerCallback):
        def on_step_begin(self, *unused, **kwargs):
            self.started = time.perf_counter()

        def on_step_end(self, *unused, **kwargs):
            steps.append({"seconds": time.perf_counter() - self.started})

        def on_log(self, *unused, logs=None, **kwargs):
            if logs and "loss" in logs and steps and "loss" not in steps[-1]:
                steps[-1]["loss"] = float(logs["loss"])

    out = tempfile.mkdtemp(prefix="hf-baseline-")
    training_args = TrainingArguments(
        output_dir=out, per_device_train_batch_size=args.batch_size, max_steps=args.steps,
        learning_rate=args.lr, lr_scheduler_type="cosine", warmup_steps=args.warmup, max_grad_norm=1.0,
        bf16=args.dtype == "bfloat16", logging_steps=1, save_strategy="no", report_to=[], seed=args.seed, use_cpu=True,
        dataloader_num_workers=0, disable_tqdm=True)
    trainer = InOrder(model=model, args=training_args, train_dataset=dataset,
                      data_collator=DataCollatorForSeq2Seq(tokenizer, padding="longest", label_pad_token_id=IGNORE),
                      callbacks=[Timer()])
    trainer.train()
    lora_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return summarise("hf-trainer+peft", steps, encoded, args, model.config, lora_params)


def run_domainlm(args) -> dict:
    from domainlm.training.config import TrainConfig
    from domainlm.training.loop import Trainer

    run_dir = Path(tempfile.mkdtemp(prefix="domainlm-bench-"))
    config = TrainConfig.model_validate({
        "name": "bench", "vertical": "medical", "base_model": args.model, "output_dir": str(run_dir),
        "seed": args.seed,
        "data": {"files": [{"path": args.rows, "format": "messages"}], "max_length": args.max_length,
                 "truncate": True, "shuffle": False, "eval_fraction": 0.0, "max_eval_rows": 0},
        "lora": {"r": args.rank, "alpha": 2 * args.rank, "dropout": 0.0},
        "train": {"batch_size": args.batch_size, "max_steps": args.steps, "lr": args.lr, "schedule": "cosine",
                  "warmup_steps": args.warmup, "max_grad_norm": 1.0,
                  "precision": {"bfloat16": "bf16", "float32": "fp32"}[args.dtype],
                  "kernels": args.kernels, "compile": args.compile},
        "checkpoint": {"every_steps": 0}, "log": {"tensorboard": False}})
    trainer = Trainer(config).setup()
    trainer.fit()
    trainer.close()
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    steps = [{"seconds": r["step_seconds"], "loss": r["loss"]} for r in records if "loss" in r]
    lora_params = sum(p.numel() for p in trainer.params)
    config_hf = trainer.module.peft.get_base_model().config
    return summarise(f"domainlm ({trainer.kernels})", steps, trainer.data.train, args, config_hf, lora_params)


def summarise(name: str, steps: list[dict], encoded, args, model_config, lora_params: int) -> dict:
    per_step = args.batch_size
    timed = list(range(args.skip, len(steps)))
    tokens = sum(len(encoded[i]) for s in timed for i in range(s * per_step, (s + 1) * per_step))
    seconds = sum(steps[s]["seconds"] for s in timed)
    rows = [encoded[i] for s in timed for i in range(s * per_step, (s + 1) * per_step)]
    losses = [s["loss"] for s in steps if "loss" in s]
    return {"name": name, "steps": len(steps), "timed_steps": len(timed), "tokens": tokens, "seconds": seconds,
            "tokens_per_s": tokens / seconds, "flops_per_s": model_flops(rows, model_config, lora_params) / seconds,
            "peak_rss_gb": peak_rss_gb(), "final_loss": sum(losses[-5:]) / len(losses[-5:]), "losses": losses}


# ---- driver -------------------------------------------------------------------------------------------------------
def child(args) -> None:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    result = (run_baseline if args.side == "baseline" else run_domainlm)(args)
    result["threads"] = torch.get_num_threads()
    Path(args.result).write_text(json.dumps(result))


def spawn(side: str, args, rows: Path, result: Path) -> dict:
    command = [sys.executable, __file__, "--side", side, "--rows", str(rows), "--result", str(result),
               "--steps", str(args.steps), "--batch-size", str(args.batch_size), "--max-length", str(args.max_length),
               "--rank", str(args.rank), "--lr", str(args.lr), "--warmup", str(args.warmup), "--skip", str(args.skip),
               "--seed", str(args.seed), "--kernels", args.kernels, "--compile", args.compile, "--dtype", args.dtype] \
        + (["--model", args.model] if args.model else []) + (["--threads", str(args.threads)] if args.threads else [])
    env = {**os.environ, "DOMAINLM_PROGRESS": "off", "TOKENIZERS_PARALLELISM": "false"}
    started = time.perf_counter()
    subprocess.run(command, check=True, env=env)
    out = json.loads(result.read_text())
    out["wall_s"] = time.perf_counter() - started
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--dtype", default="auto", choices=["auto", "bfloat16", "float32"],
                        help="both sides (auto: bf16 where this CPU has it natively, else fp32)")
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--warmup", type=int, default=0,
                        help="warmup steps (default 0: HF's warmup starts at lr 0, domainlm's at lr/warmup)")
    parser.add_argument("--skip", type=int, default=2, help="first steps left out of tokens/s (warm-up)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--model", default=None, help="base model (default: the embedded smollm2-135m)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads in both runs (default: torch's)")
    parser.add_argument("--kernels", default="auto", choices=["auto", "fused", "hf"])
    parser.add_argument("--compile", default="auto", choices=["off", "on", "auto"],
                        help="domainlm train.compile (auto: on with AMX); compile time falls in the --skip steps")
    parser.add_argument("--only", choices=["both", "baseline", "domainlm"], default="both")
    parser.add_argument("--rounds", type=int, default=1,
                        help="run both sides this many times, order alternating; tokens/s ratio = median of rounds")
    parser.add_argument("--json", default=None, help="also write the results here")
    parser.add_argument("--side", choices=["baseline", "domainlm"], help=argparse.SUPPRESS)
    parser.add_argument("--rows", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.dtype = resolve_dtype(args.dtype, "cpu")   # children get the resolved name: both sides run the same
    if args.side:
        child(args)
        return 0

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="train-bench-"))
    rows = work / "rows.jsonl"
    write_rows(rows, args.steps * args.batch_size)
    sides = [side for side in ("baseline", "domainlm") if args.only in ("both", side)]
    rounds = []
    for index in range(args.rounds):   # the order alternates, so a machine that slows down mid-run hurts both
        order = sides if index % 2 == 0 else sides[::-1]
        rounds.append({side: spawn(side, args, rows, work / f"{side}-{index}.json") for side in order})
    peak = matmul_peak(args.dtype)
    print(f"\ntrain throughput: {args.steps} steps × {args.batch_size} MedQuAD rows, max_length {args.max_length}, "
          f"LoRA r{args.rank}, {args.dtype}, compile {args.compile}, threads {rounds[0][sides[0]]['threads']}, "
          f"{args.rounds} round(s); {cpu_class()} CPU; {args.dtype} matmul peak measured {peak / 1e12:.3f} TFLOP/s")
    print(f"{'':30}{'tokens/s':>10}{'peak RSS GB':>13}{'final loss':>12}{'MFU':>8}{'wall s':>9}")
    for index, results in enumerate(rounds):
        for side in sides:
            out = results[side]
            out["mfu"] = out["flops_per_s"] / peak
            label = out["name"] + (f" [{index + 1}]" if args.rounds > 1 else "")
            print(f"{label:30}{out['tokens_per_s']:>10.1f}{out['peak_rss_gb']:>13.2f}"
                  f"{out['final_loss']:>12.4f}{out['mfu']:>8.1%}{out['wall_s']:>9.0f}")
    summary = {"rounds": rounds, "results": rounds[0], "matmul_peak_flops": peak, "args": vars(args)}
    if len(sides) == 2:
        per_round = [r["domainlm"]["tokens_per_s"] / r["baseline"]["tokens_per_s"] for r in rounds]
        ours, base = rounds[0]["domainlm"], rounds[0]["baseline"]
        summary["ratios"] = {"tokens_per_s": statistics.median(per_round), "tokens_per_s_rounds": per_round,
                             "peak_rss": max(r["domainlm"]["peak_rss_gb"] / r["baseline"]["peak_rss_gb"]
                                             for r in rounds),
                             "final_loss_rel_diff": (ours["final_loss"] - base["final_loss"]) / base["final_loss"]}
        r = summary["ratios"]
        spread = f" (rounds {', '.join(f'{x:.2f}' for x in per_round)})" if args.rounds > 1 else ""
        print(f"ratios domainlm/baseline: tokens/s {r['tokens_per_s']:.2f}×{spread} (target ≥ 3.0), peak RSS "
              f"{r['peak_rss']:.2f}× (target ≤ 0.5), final loss {r['final_loss_rel_diff']:+.2%} (target within ±2%)")
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
