"""One eval run: config + subjects → tasks → requests → cached backend calls → per-item scores → report files.

    run_eval(config, model="medical@3")  evaluates the base AND that adapter on the same items (paired), writes
    report.json / report.md / charts, attaches the report to the registry entry, and returns the report dict.
"""

from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

from domainlm import log, paths
from domainlm.config.loader import load_config
from domainlm.errors import ConfigError
from domainlm.progress import bar

from domainlm.evals import scorers
from domainlm.evals.cache import ResultCache, model_key, request_key
from domainlm.evals.config import EvalConfig, TaskRef
from domainlm.evals.prompts import GenRequest, LLRequest, PromptBuilder
from domainlm.evals.subjects import Subject, resolve_subjects
from domainlm.evals.tasks import Task, TaskContext, build_task, load_task_file
from domainlm.evals.tasks.base import choice_continuations, sample_items

logger = log.get("evals")


@dataclass
class PlannedTask:
    """A task with its sampled items, its suite, and the requests each item needs."""

    task: Task
    suite: str                                         # "domain" | "general" | "safety"
    few_shot: int
    ll: list[list[LLRequest]] = field(default_factory=list)   # per item (multiple_choice, nll)
    gen: list[GenRequest | None] = field(default_factory=list)  # per item (generate, judge)


def load_eval_config(config: EvalConfig | str | Path, overrides: list[str] | None = None) -> tuple[EvalConfig, Path]:
    if isinstance(config, EvalConfig):
        return config, Path.cwd()
    path = Path(config)
    return load_config(path, EvalConfig, overrides), path.resolve().parent


def plan_tasks(cfg: EvalConfig, base_dir: Path, limit: int | None, builder: PromptBuilder) -> list[PlannedTask]:
    ctx = TaskContext(vertical=cfg.vertical, seed=cfg.seed)
    planned: list[PlannedTask] = []
    for suite, refs in (("domain", cfg.domain_tasks), ("general", cfg.general_tasks), ("safety", cfg.safety_tasks)):
        for ref in refs:
            task = _build(ref, ctx, base_dir)
            run_cap = (limit or cfg.limit) if ref.capped or cfg.cap_all else None
            caps = [c for c in (ref.limit, run_cap) if c]  # the tighter of the task's and the run's cap
            task.items = sample_items(task.items, min(caps) if caps else None, cfg.seed, task.name)
            few_shot = cfg.prompt.few_shot if ref.few_shot is None else ref.few_shot
            plan = PlannedTask(task, suite, few_shot)
            for item in task.items:
                if task.kind in ("multiple_choice", "nll"):
                    plan.ll.append(builder.loglikelihood_requests(task, item, few_shot))
                    plan.gen.append(None)
                else:
                    plan.ll.append([])
                    plan.gen.append(builder.generate_request(task, item, few_shot, ref.max_new_tokens))
            planned.append(plan)
    names = [p.task.name for p in planned]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"task(s) listed twice: {', '.join(duplicates)}")
    return planned


def _build(ref: TaskRef, ctx: TaskContext, base_dir: Path) -> Task:
    if ref.file:
        path = Path(ref.file).expanduser()
        return load_task_file(path if path.is_absolute() else base_dir / path)
    return build_task(ref.name, ctx, ref.params)


class Scorer:
    """Runs one subject's requests through the cache and the backend, a committed chunk at a time."""

    def __init__(self, backend, cache: ResultCache, tokenizer, max_length: int, commit_every: int):
        self.backend = backend
        self.cache = cache
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.commit_every = commit_every
        self.computed = 0

    def loglikelihood(self, subject: Subject, requests: list[LLRequest]) -> dict[LLRequest, dict]:
        from domainlm.evals.backends.base import encode_requests

        model = model_key(self.backend.identity(subject))
        keys = {r: request_key(model, {"ll": [r.context, r.continuation, r.max_tokens]}) for r in requests}
        found = self.cache.get_many(list(keys.values()))
        results = {r: found[k] for r, k in keys.items() if k in found}
        todo = sorted((r for r in requests if r not in results), key=lambda r: (r.context, r.continuation))
        with bar(total=len(todo), desc=f"{subject.label} log-likelihood", unit="req") as progress:
            start = 0
            while start < len(todo):
                end = min(start + self.commit_every, len(todo))
                while end < len(todo) and todo[end].context == todo[end - 1].context:
                    end += 1  # keep one context's options in one chunk so the backend can share its prefix
                chunk = todo[start:end]
                scored = self.backend.loglikelihood(subject, encode_requests(self.tokenizer, chunk, self.max_length))
                self.cache.put_many(model, {keys[r]: s for r, s in zip(chunk, scored, strict=True)})
                results.update(zip(chunk, scored, strict=True))
                self.computed += len(chunk)
                progress.update(len(chunk))
                start = end
        return results

    def generate(self, subject: Subject, requests: list[GenRequest]) -> dict[GenRequest, str]:
        model = model_key(self.backend.identity(subject))
        keys = {r: request_key(model, {"gen": [r.prompt, list(r.messages or ()), r.max_new_tokens, list(r.stop)]})
                for r in requests}
        found = self.cache.get_many(list(keys.values()))
        results = {r: found[k] for r, k in keys.items() if k in found}
        todo = [r for r in dict.fromkeys(requests) if r not in results]
        with bar(total=len(todo), desc=f"{subject.label} generate", unit="req") as progress:
            for start in range(0, len(todo), self.commit_every):
                chunk = todo[start:start + self.commit_every]
                texts = self.backend.generate(subject, chunk)
                self.cache.put_many(model, {keys[r]: t for r, t in zip(chunk, texts, strict=True)})
                results.update(zip(chunk, texts, strict=True))
                self.computed += len(chunk)
                progress.update(len(chunk))
        return results


def score_item(plan: PlannedTask, index: int, ll: dict, gen: dict, judged: dict | None) -> dict:
    """Per-item metrics for one subject (plus what the model chose or wrote)."""
    task, item = plan.task, plan.task.items[index]
    if task.kind == "multiple_choice":
        lps = [ll[r]["logprob"] for r in plan.ll[index]]
        out = scorers.multiple_choice(lps, choice_continuations(task, item), item.gold)
        out["logprobs"] = [round(v, 4) for v in lps]
        return out
    if task.kind == "nll":
        result = ll[plan.ll[index][0]]
        tokens = max(1, result["tokens"])
        return {"nll": -result["logprob"] / tokens, "tokens": result["tokens"]}
    text = gen[plan.gen[index]]
    if task.kind == "judge":
        return {**judged[index], "output": text[:2000]}
    out = scorers.generation(text, item.reference or "", task.metrics, task.labels, task.tolerance)
    if task.keep_output:   # answers to harmful requests may be harmful: safety tasks keep the verdict only
        out["output"] = text[:2000]
    return out


def _deterministic(seed: int, enabled: bool):
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    previous = torch.are_deterministic_algorithms_enabled()
    if enabled:
        torch.use_deterministic_algorithms(True, warn_only=True)
    return lambda: torch.use_deterministic_algorithms(previous, warn_only=True)


def run_eval(config: EvalConfig | str | Path, model: str = "base", adapters: list[str] | tuple[str, ...] = (), *,
             backend: str | None = None, endpoint: str | None = None, limit: int | None = None,
             output_dir: str | Path | None = None, overrides: list[str] | None = None, attach: bool = True,
             registry=None, commit_every: int = 256) -> dict:
    """Evaluate the base and each adapter on the same items; write report.json, report.md and charts.

    model: "base" (base only, or base + `adapters`) or "<vertical>@<version>" from the registry (base + it).
    Returns the report dict; report["files"] lists what was written.
    """
    from transformers import AutoTokenizer

    from domainlm.evals import report as reporting
    from domainlm.evals.backends import make_backend, max_length
    from domainlm.evals.judge import judge_items
    from domainlm.models import resolve_base

    cfg, base_dir = load_eval_config(config, overrides)
    if backend:
        cfg.backend = backend
    if endpoint:
        cfg.openai.endpoint = endpoint
    started = time.time()
    base = resolve_base(cfg.base_model)
    subjects = resolve_subjects(model, list(adapters), base, registry)
    tokenizer = AutoTokenizer.from_pretrained(base.path)
    builder = PromptBuilder(tokenizer, cfg.prompt.style, cfg.prompt.system, cfg.seed)
    plans = plan_tasks(cfg, base_dir, limit, builder)
    restore = _deterministic(cfg.seed, cfg.deterministic)
    cache = ResultCache(cfg.cache.path or paths.home() / "eval_cache.sqlite", cfg.cache.enabled)
    timings: dict[str, dict] = {}
    per_item: dict[str, dict[str, list[dict]]] = {}
    gates = reporting.fixed_gates(cfg.vertical)   # fixed before the first item is scored
    engine = None
    try:
        load_started = time.time()
        engine = make_backend(cfg, base, subjects, tokenizer)
        load_seconds = time.time() - load_started
        scorer = Scorer(engine, cache, tokenizer, max_length(cfg), commit_every)
        all_ll = list(dict.fromkeys(r for p in plans for reqs in p.ll for r in reqs))
        all_gen = list(dict.fromkeys(r for p in plans for r in p.gen if r is not None))
        for subject in subjects:
            t0, hits0, computed0 = time.time(), cache.hits, scorer.computed
            ll = scorer.loglikelihood(subject, all_ll) if all_ll else {}
            t_gen = time.time()   # the two kinds apart: generation is the slow one on a CPU, and budgets are cut there
            gen = scorer.generate(subject, all_gen) if all_gen else {}
            for plan in plans:
                judged = judge_items(cfg.judge, plan, gen, cache) if plan.task.kind == "judge" else None
                per_item.setdefault(plan.task.name, {})[subject.label] = [
                    score_item(plan, i, ll, gen, judged) for i in range(len(plan.task.items))]
            timings[subject.label] = {"seconds": round(time.time() - t0, 2), "computed": scorer.computed - computed0,
                                      "cached": cache.hits - hits0, "loglikelihood_seconds": round(t_gen - t0, 2),
                                      "generate_seconds": round(time.time() - t_gen, 2)}
            logger.info("subject scored", subject=subject.label, **timings[subject.label])
    finally:
        restore()
        cache.close()
        if engine is not None:
            engine.close()
    dtype_used = getattr(engine, "dtype_name", getattr(getattr(cfg, cfg.backend, None), "dtype", None))
    settings = {"backend": cfg.backend, "prompt_style": cfg.prompt.style, "system_prompt": cfg.prompt.system,
                "few_shot": cfg.prompt.few_shot, "seed": cfg.seed, "deterministic": cfg.deterministic,
                "limit": limit or cfg.limit, "dtype": dtype_used,
                "chat_template_sha256": base.chat_template_sha256, "endpoint": cfg.openai.endpoint
                if cfg.backend == "openai" else None, "cache": str(cache.path) if cache.enabled else None,
                "load_seconds": round(load_seconds, 2), "wall_seconds": round(time.time() - started, 2)}
    report = reporting.build_report(cfg, base, subjects, plans, per_item, settings, timings, gates)
    out = Path(output_dir or cfg.output_dir or _default_output(cfg.vertical, subjects))
    report = reporting.write_report(report, out, cfg)
    if attach and model != "base":  # a registry subject: promotion reads the report from its entry
        reporting.attach(out / "report.json", registry)
        report["attached"] = True
    return report


def _default_output(vertical: str, subjects: list[Subject]) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    label = subjects[-1].label.replace("@", "-v")
    return paths.home() / "evals" / vertical / f"{stamp}-{label}-{os.getpid()}"
