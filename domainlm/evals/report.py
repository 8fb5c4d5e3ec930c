"""The eval report: JSON (per-item results, 95% bootstrap intervals, paired tests, summary), Markdown, charts.

summary (what promotion gates read), for the first adapter vs the base:
  domain_gain        points, adapter − base, mean over gating domain tasks whose primary metric is a 0–1 score
  general_regression points, base − adapter, mean over general-regression tasks (positive = worse than base)
  general_noninferiority  one-sided paired test on the pooled general items (evals/noninferiority.py): diff,
                     lower bound, margin (the vertical's declared one), n, passed, power; accuracy alongside
  significant        stratified paired bootstrap over the gating domain suite (NLL tasks included), p < alpha;
                     multiple-choice tasks enter it by the gates' suite_mc_metric (acc, or gold_prob)
  nll_reduction      fraction, (base − adapter) / base of mean per-token answer NLL, mean over domain NLL tasks
  nll_reduction_low  fraction, the lowest task's lower 95% bound of that cut
  format_adherence   per generated-label task: base / adapter share of answers in the label format, drop (points)
  safety             per safety task: base / adapter rate (harmful compliance or over-refusal, Wilson 95%) and the
                     paired change in points (adapter − base; positive = more often)
Tasks the vertical's gates list as report_only are scored and reported but not in domain_gain or significant.
Fields a run cannot measure (no general tasks, no NLL task, base-only run) are null.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from domainlm import __version__
from domainlm.atomic import atomic_dir, atomic_write_json

from domainlm.evals.bootstrap import Paired, mean_ci, paired_test, suite_test
from domainlm.evals.noninferiority import items_needed, noninferiority, power

SCHEMA = "domainlm.eval_report/1"


def _task_result(plan, per_subject: dict[str, list[dict]], subjects, boot) -> dict:
    task = plan.task
    labels = [s.label for s in subjects]
    scores = {}
    for label in labels:
        rows = per_subject[label]
        scores[label] = {m: mean_ci([r[m] for r in rows], boot.samples, boot.seed, boot.alpha)
                         for m in task.metrics if rows and m in rows[0]}
    comparisons = {}
    base_rows = np.array([r[task.primary] for r in per_subject["base"]], dtype=np.float64)
    for label in labels[1:]:
        rows = np.array([r[task.primary] for r in per_subject[label]], dtype=np.float64)
        comparisons[label] = {"metric": task.primary, "unit": _unit(task),
                              "base": float(base_rows.mean()), "adapter": float(rows.mean()),
                              **paired_test(_paired(task, base_rows, rows), boot.samples, boot.seed, boot.alpha)}
    items = []
    for index, item in enumerate(task.items):
        entry = {"id": item.id}
        if task.kind == "multiple_choice":
            entry["gold"] = item.gold
        elif item.reference is not None:
            entry["reference"] = item.reference[:300]
        entry["results"] = {label: per_subject[label][index] for label in labels}
        items.append(entry)
    result = {"kind": task.kind, "suite": plan.suite, "primary_metric": task.primary,
              "higher_is_better": task.higher_is_better, "n_items": len(task.items), "few_shot": plan.few_shot,
              "language": task.language, "sources": list(task.sources), "description": task.description,
              "scores": scores, "comparisons": comparisons, "items": items}
    categories = [item.fields.get("category") for item in task.items]
    if all(c is not None for c in categories) and len(set(categories)) > 1:
        result["by_category"] = by_category(categories, per_subject, labels, task.primary, boot.alpha)
    return result


def _unit(task) -> str:
    if task.kind == "nll":
        return "% NLL reduction"
    return "points" if task.higher_is_better else "points lower"


def _paired(task, base: np.ndarray, adapter: np.ndarray) -> Paired:
    """The adapter's improvement: % NLL cut, points gained, or points a lower-is-better rate fell."""
    if task.kind == "nll":
        return Paired(base, adapter, relative=True)
    if task.higher_is_better:
        return Paired(base, adapter, relative=False)
    return Paired(-base, -adapter, relative=False)


def by_category(categories: list[str], per_subject: dict[str, list[dict]], labels: list[str], metric: str,
                alpha: float) -> dict:
    """category → subject → {rate, ci_low, ci_high, n}: the metric's share per category, Wilson 95% intervals."""
    out: dict[str, dict] = {}
    for category in sorted(set(categories)):
        where = [i for i, c in enumerate(categories) if c == category]
        out[category] = {label: wilson([per_subject[label][i][metric] for i in where], alpha) for label in labels}
    return out


def wilson(values, alpha: float = 0.05) -> dict:
    """{rate, ci_low, ci_high, n}: the share of 1s with a Wilson score interval (sound at 0%, 100% and small n)."""
    from statistics import NormalDist

    x = np.asarray(values, dtype=np.float64)
    n = int(x.size)
    if n == 0:
        return {"rate": None, "ci_low": None, "ci_high": None, "n": 0}
    p, z = float(x.mean()), NormalDist().inv_cdf(1 - alpha / 2)
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return {"rate": p, "ci_low": max(0.0, round(float(centre - half), 10)),
            "ci_high": min(1.0, round(float(centre + half), 10)), "n": n}


def _safety(plans, per_item, adapter: str, boot) -> dict:
    """Per safety task: base and adapter rates (Wilson 95%), the paired change in points, and per category."""
    out = {}
    for plan in plans:
        if plan.suite != "safety":
            continue
        task, rows = plan.task, per_item[plan.task.name]
        base = np.array([r[task.primary] for r in rows["base"]], dtype=np.float64)
        tuned = np.array([r[task.primary] for r in rows[adapter]], dtype=np.float64)
        change = paired_test(Paired(base, tuned, relative=False), boot.samples, boot.seed, boot.alpha)
        out[task.name] = {"metric": task.primary, "higher_is_better": task.higher_is_better,
                          "base": wilson(base, boot.alpha), "adapter": wilson(tuned, boot.alpha),
                          "change": {"points": change["effect"], "ci_low": change["ci_low"],
                                     "ci_high": change["ci_high"]}}
    return out


def _general_noninferiority(general, per_item, adapter: str, gate: dict) -> dict | None:
    """The general suite's items pooled (the sample is stratified by subject by construction), tested one-sided:
    is the adapter at most `margin` points worse than the base? With the power this sample has, from its spread."""
    metric = gate.get("metric", "gold_prob")
    plans = [p for p in general if p.task.kind == "multiple_choice"]
    if not plans:
        return None

    def pooled(name: str, label: str) -> np.ndarray:
        return np.array([r[name] for p in plans for r in per_item[p.task.name][label]], dtype=np.float64)

    margin, alpha = float(gate.get("margin", 2.0)), float(gate.get("alpha", 0.05))
    test = noninferiority(pooled(metric, "base"), pooled(metric, adapter), margin, alpha)
    accuracy = noninferiority(pooled("acc", "base"), pooled("acc", adapter), margin, alpha)
    return {"metric": metric, **test, "min_items": int(gate.get("min_items", 600)),
            "power": power(test["sd"], test["n"], margin, alpha),
            "items_needed": items_needed(test["sd"], margin, alpha),
            "accuracy": {**accuracy, "power": power(accuracy["sd"], accuracy["n"], margin, alpha),
                         "items_needed": items_needed(accuracy["sd"], margin, alpha)},
            "tasks": [p.task.name for p in plans]}


def _format_adherence(domain, per_item, adapter: str, boot) -> dict:
    """Per generated-label task: how often each side answers in the label format (format_ok), in points."""
    out = {}
    for plan in domain:
        rows = per_item[plan.task.name]
        if plan.task.kind != "generate" or not rows["base"] or "format_ok" not in rows["base"][0]:
            continue
        base = np.array([r["format_ok"] for r in rows["base"]], dtype=np.float64)
        tuned = np.array([r["format_ok"] for r in rows[adapter]], dtype=np.float64)
        test = paired_test(Paired(base, tuned, relative=False), boot.samples, boot.seed, boot.alpha)
        out[plan.task.name] = {"base": 100 * float(base.mean()), "adapter": 100 * float(tuned.mean()),
                               "drop": 100 * float(base.mean() - tuned.mean()),
                               "ci_low": test["ci_low"], "ci_high": test["ci_high"], "n": int(base.size)}
    return out


def _summary(plans, per_item, adapter: str, boot, gates: dict | None) -> dict:
    values = (gates or {}).get("values") or {}
    report_only = set(values.get("report_only") or [])
    domain_all = [p for p in plans if p.suite == "domain"]
    domain = [p for p in domain_all if p.task.name not in report_only]
    general = [p for p in plans if p.suite == "general"]

    def arrays(plan):
        metric = plan.task.primary
        return (np.array([r[metric] for r in per_item[plan.task.name]["base"]], dtype=np.float64),
                np.array([r[metric] for r in per_item[plan.task.name][adapter]], dtype=np.float64))

    gains = [100 * (a.mean() - b.mean()) for b, a in map(arrays, [p for p in domain if p.task.higher_is_better])]
    regressions = [100 * (b.mean() - a.mean()) for b, a in map(arrays, [p for p in general if p.task.higher_is_better])]
    nll_plans = [p for p in domain if not p.task.higher_is_better]
    nll = [(b.mean() - a.mean()) / b.mean() for b, a in map(arrays, nll_plans) if b.mean() > 0]
    # the weakest task's lower 95% bound: "cut ≥ 15%, and surely ≥ 10%" must hold for every NLL task
    nll_low = [paired_test(Paired(*arrays(p), relative=True), boot.samples, boot.seed, boot.alpha)["ci_low"] / 100
               for p in nll_plans]
    suite_mc = values.get("suite_mc_metric") or "acc"

    def suite_arrays(plan):
        if plan.task.kind != "multiple_choice" or suite_mc == "acc":
            return arrays(plan)
        return (np.array([r[suite_mc] for r in per_item[plan.task.name]["base"]], dtype=np.float64),
                np.array([r[suite_mc] for r in per_item[plan.task.name][adapter]], dtype=np.float64))

    suite = suite_test([Paired(*suite_arrays(p), relative=not p.task.higher_is_better) for p in domain],
                       boot.samples, boot.seed, boot.alpha)
    if suite:
        suite["mc_metric"] = suite_mc
    return {
        "adapter": adapter,
        "domain_gain": float(np.mean(gains)) if gains else None,
        "general_regression": float(np.mean(regressions)) if regressions else None,
        "general_noninferiority": _general_noninferiority(general, per_item, adapter,
                                                          values.get("general_noninferiority") or {}),
        "significant": bool(suite["significant"]) if suite else False,
        "p_value": suite["p_value"] if suite else None,
        "domain_effect": suite,
        "nll_reduction": float(np.mean(nll)) if nll else None,
        "nll_reduction_low": float(min(nll_low)) if nll_low else None,
        "format_adherence": _format_adherence(domain_all, per_item, adapter, boot),
        "safety": _safety(plans, per_item, adapter, boot),
        "domain_tasks": [p.task.name for p in domain],
        "report_only_tasks": [p.task.name for p in domain_all if p.task.name in report_only],
        "general_tasks": [p.task.name for p in general],
    }


def build_report(cfg, base, subjects, plans, per_item, settings: dict, timings: dict, gates: dict | None) -> dict:
    boot = cfg.bootstrap
    adapters = [s for s in subjects if not s.is_base]
    first = adapters[0] if adapters else None
    subject = {
        "vertical": (first.vertical if first else None) or cfg.vertical,
        "version": first.version if first else None,
        "label": first.label if first else "base",
        "base": {"model_id": base.model_id, "ref": base.ref, "weights_sha256": base.weights_sha256,
                 "chat_template_sha256": base.chat_template_sha256},
        "adapter": first.to_dict() if first else None,
        "artifact_id": first.artifact_id if first else None,
    }
    summaries = {a.label: _summary(plans, per_item, a.label, boot, gates) for a in adapters}
    return {
        "schema": SCHEMA,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "domainlm_version": __version__,
        "vertical": cfg.vertical,
        "subject": subject,
        "subjects": [s.to_dict() for s in subjects],
        "settings": settings,
        "timings": timings,
        "bootstrap": {"samples": boot.samples, "seed": boot.seed, "alpha": boot.alpha},
        "config": cfg.model_dump(mode="json"),
        "tasks": {p.task.name: _task_result(p, per_item[p.task.name], subjects, boot) for p in plans},
        "summary": summaries[first.label] if first else None,
        "summaries": summaries,
        "gates": gates,
    }


def fixed_gates(vertical: str) -> dict | None:
    """The vertical's promotion gates as they stand now — called before any item is scored — with their
    fingerprint and the time they were read: {"values", "sha256", "fixed_at"}. The registry applies them; a
    report whose fingerprint no longer matches the vertical's gates cannot promote."""
    from domainlm.errors import DomainlmError
    from domainlm.verticals import get_vertical

    try:
        gates = get_vertical(vertical).gates
    except DomainlmError:   # a suite without a registered vertical (configs/eval/general.yaml) has no gates
        return None
    return {"values": gates.model_dump(mode="json"), "sha256": gates.fingerprint(),
            "fixed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def write_report(report: dict, folder: Path, cfg) -> dict:
    """report.json + report.md + charts/*.png, all or nothing (temp folder renamed into place)."""
    from domainlm.evals import charts, markdown

    folder = Path(folder)
    report["files"] = {"json": str(folder / "report.json"), "markdown": str(folder / "report.md"), "charts": []}
    with atomic_dir(folder) as tmp:
        drawn = charts.draw(report, tmp / "charts")
        report["files"]["charts"] = [str(folder / "charts" / p.name) for p in drawn]
        (tmp / "report.md").write_text(markdown.render(report), encoding="utf-8")
        atomic_write_json(tmp / "report.json", report)
    return report


def attach(report_path: str | Path, registry=None) -> None:
    """Attach a written report to its adapter's registry entry (promotion reads it from there)."""
    import json

    from domainlm.errors import ConfigError

    report = json.loads(Path(report_path).read_text(encoding="utf-8"))
    subject = report.get("subject") or {}
    if subject.get("version") is None or not subject.get("vertical"):
        raise ConfigError(f"{report_path}: report has no registered adapter (subject.vertical/version) to attach to")
    if registry is None:
        from domainlm.registry import Registry

        registry = Registry()
    registry.attach_report(subject["vertical"], int(subject["version"]), str(report_path))
