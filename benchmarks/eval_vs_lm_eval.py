"""Parity and speed against lm-evaluation-harness on one shared multiple-choice task.

Exports N items of a built-in task (default: medmcqa, 300 items) once, as rendered prompts + choices + gold in a
JSONL file, with two task definitions over that same file:
  * lm-eval's custom-task YAML (dataset_path: json, output_type: multiple_choice, run offline with --include_path)
  * a domainlm user task YAML (kind: multiple_choice, template "{prompt}")
then runs `python -m lm_eval run --model hf` and `python -m domainlm.cli eval` on the same model, dtype and items,
each in its own process (start-up, imports and model load count for both), and prints both accuracies, their
difference and the wall-time ratio. Exit status 1 when acc or acc_norm differ by more than 0.5 points.

    python benchmarks/eval_vs_lm_eval.py [--task medmcqa] [--limit 300] [--dtype auto] [--batch-size 16]
                                         [--threads N]
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

TOLERANCE_POINTS = 0.5


def export_task(task_name: str, limit: int, folder: Path, seed: int = 1234, vertical: str = "medical") -> dict:
    """Write items.jsonl + the lm-eval task YAML + the domainlm task and eval config; return their paths."""
    import yaml

    from domainlm.evals.tasks import TaskContext, build_task
    from domainlm.evals.tasks.base import choice_continuations, render, sample_items

    task = build_task(task_name, TaskContext(vertical, seed))
    if task.kind != "multiple_choice":
        raise SystemExit(f"{task_name} is a {task.kind} task; parity needs a multiple_choice task")
    items = sample_items(task.items, limit, seed, task.name)
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / "items.jsonl"
    with open(data, "w", encoding="utf-8") as handle:
        for item in items:
            handle.write(json.dumps({"id": item.id, "prompt": render(task, item),
                                     "choices": choice_continuations(task, item), "gold": item.gold},
                                    ensure_ascii=False) + "\n")
    lm_task = f"domainlm_{task_name}"
    lm_dir = folder / "lm_eval_tasks"
    lm_dir.mkdir(exist_ok=True)
    (lm_dir / f"{lm_task}.yaml").write_text(yaml.safe_dump({
        "task": lm_task,
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": str(data)}},
        "test_split": "test",
        "output_type": "multiple_choice",
        "doc_to_text": "prompt",      # a field name: lm-eval returns the pre-rendered prompt unchanged
        "doc_to_choice": "choices",
        "doc_to_target": "gold",
        "target_delimiter": " ",
        "fewshot_delimiter": "\n\n",
        "num_fewshot": 0,
        "metric_list": [{"metric": "acc", "aggregation": "mean", "higher_is_better": True},
                        {"metric": "acc_norm", "aggregation": "mean", "higher_is_better": True}],
    }, sort_keys=False, allow_unicode=True), encoding="utf-8")
    ours = folder / "domainlm_task.yaml"
    ours.write_text(yaml.safe_dump({
        "name": task_name, "kind": "multiple_choice", "data": str(data), "template": "{prompt}",
        "choice_style": "texts", "fields": {"id": "id", "choices": "choices", "answer": "gold"},
    }, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return {"data": data, "lm_eval_dir": lm_dir, "lm_eval_task": lm_task, "domainlm_task": ours,
            "items": len(items), "task": task_name}


def write_eval_config(folder: Path, task_yaml: Path, dtype: str, cache: bool = False) -> Path:
    config = folder / "eval.yaml"
    folder.mkdir(parents=True, exist_ok=True)
    config.write_text(f"# launch: domainlm eval {config} --model base\n" + json.dumps({
        "vertical": "medical", "domain_tasks": [{"file": str(task_yaml)}], "hf": {"dtype": dtype, "device": "cpu"},
        "cache": {"enabled": cache}, "bootstrap": {"samples": 200},
    }, indent=2) + "\n", encoding="utf-8")
    return config


def run_lm_eval(exported: dict, model_path: Path, dtype: str, batch_size: int, out: Path) -> dict:
    env = {**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    command = [sys.executable, "-m", "lm_eval", "run", "--model", "hf",
               "--model_args", f"pretrained={model_path},dtype={dtype}", "--tasks", exported["lm_eval_task"],
               "--include_path", str(exported["lm_eval_dir"]), "--batch_size", str(batch_size), "--device", "cpu",
               "--output_path", str(out), "--log_samples"]
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"lm-eval failed ({result.returncode}):\n{result.stderr[-4000:]}")
    results_file = max(out.rglob("results_*.json"), key=lambda p: p.stat().st_mtime)
    metrics = json.loads(results_file.read_text())["results"][exported["lm_eval_task"]]
    samples_file = max(out.rglob(f"samples_{exported['lm_eval_task']}_*.jsonl"), key=lambda p: p.stat().st_mtime)
    per_item = {}
    for line in samples_file.read_text().splitlines():
        sample = json.loads(line)
        per_item[sample["doc"]["id"]] = sample["acc"]
    return {"acc": metrics["acc,none"], "acc_norm": metrics["acc_norm,none"], "seconds": seconds,
            "per_item_acc": per_item}


def run_domainlm(exported: dict, dtype: str, out: Path) -> dict:
    config = write_eval_config(out.parent, exported["domainlm_task"], dtype)
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "DOMAINLM_PROGRESS": "off"}
    command = [sys.executable, "-m", "domainlm.cli", "eval", str(config), "--model", "base", "--output", str(out),
               "--no-cache"]
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"domainlm eval failed ({result.returncode}):\n{result.stderr[-4000:]}")
    report = json.loads((out / "report.json").read_text())
    task = report["tasks"][exported["task"]]
    return {"acc": task["scores"]["base"]["acc"]["mean"], "acc_norm": task["scores"]["base"]["acc_norm"]["mean"],
            "seconds": seconds, "per_item_acc": {i["id"]: i["results"]["base"]["acc"] for i in task["items"]}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="medmcqa", help="built-in multiple-choice task to export")
    parser.add_argument("--limit", type=int, default=300, help="items (deterministic sample)")
    parser.add_argument("--dtype", default="auto", choices=["auto", "bfloat16", "float32"],
                        help="both harnesses (auto: bf16 where this CPU has it natively, else fp32)")
    parser.add_argument("--batch-size", type=int, default=16, help="lm-eval --batch_size")
    parser.add_argument("--model", default=None, help="base model (default: the embedded smollm2-135m)")
    parser.add_argument("--workdir", default=None, help="keep exported files and outputs here")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads for BOTH harnesses (OMP_NUM_THREADS; default: the libraries' own)")
    args = parser.parse_args(argv)
    from domainlm.kernels.dtypes import resolve_dtype

    args.dtype = resolve_dtype(args.dtype, "cpu")   # one name for both harnesses (lm-eval has no "auto" rule)
    if args.threads:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)  # inherited by both subprocesses

    from domainlm.models import resolve_base

    model = resolve_base(args.model)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="eval-vs-lm-eval-"))
    exported = export_task(args.task, args.limit, work / "task")
    print(f"task {args.task}: {exported['items']} items, model {model.model_id}, dtype {args.dtype}, cores "
          f"{os.cpu_count()}, threads {args.threads or 'default'}, workdir {work}", flush=True)
    lm = run_lm_eval(exported, model.path, args.dtype, args.batch_size, work / "lm_eval_out")
    print(f"lm-eval   acc {lm['acc']:.4f}  acc_norm {lm['acc_norm']:.4f}  wall {lm['seconds']:.1f} s "
          f"(batch_size {args.batch_size})", flush=True)
    ours = run_domainlm(exported, args.dtype, work / "domainlm_out" / "report")
    print(f"domainlm  acc {ours['acc']:.4f}  acc_norm {ours['acc_norm']:.4f}  wall {ours['seconds']:.1f} s", flush=True)
    d_acc = 100 * abs(ours["acc"] - lm["acc"])
    d_norm = 100 * abs(ours["acc_norm"] - lm["acc_norm"])
    disagree = sum(1 for k, v in ours["per_item_acc"].items() if lm["per_item_acc"].get(k) != v)
    ratio = lm["seconds"] / ours["seconds"]
    print(f"|Δacc| {d_acc:.2f} points, |Δacc_norm| {d_norm:.2f} points, per-item acc disagreements {disagree}/"
          f"{exported['items']}; wall-time ratio lm-eval / domainlm = {ratio:.2f}×")
    ok = d_acc <= TOLERANCE_POINTS and d_norm <= TOLERANCE_POINTS
    print("PARITY OK" if ok else f"PARITY FAILED: more than {TOLERANCE_POINTS} points apart")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
