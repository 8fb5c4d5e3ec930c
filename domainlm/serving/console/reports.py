"""An eval report (domainlm.evals.report) reshaped for the console's charts: per task base vs adapter with 95%
intervals, split into the domain suite and the general-regression panel, plus the summary and each gate's verdict.

The report is read from the copy the registry keeps (`Entry.report_path`) and must be about that entry's artifact.
"""

from __future__ import annotations

from types import SimpleNamespace

from domainlm.errors import DomainlmError
from domainlm.registry import NotFound, Registry, RegistryError
from domainlm.registry import gates as gates_mod


def _interval(stats) -> dict | None:
    """{value, lo, hi} from the harness's {mean, ci_low, ci_high, n} (None when that side was not scored)."""
    if not isinstance(stats, dict) or stats.get("mean") is None:
        return None
    return {"value": stats["mean"], "lo": stats.get("ci_low"), "hi": stats.get("ci_high")}


def task_row(name: str, task: dict, adapter: str | None) -> dict:
    """One task: primary metric of base and adapter with their 95% intervals, and the paired test between them
    (effect in the report's unit: points for 0-1 scores, % reduction for NLL)."""
    metric = task.get("primary_metric")
    scores = task.get("scores") or {}
    paired = (task.get("comparisons") or {}).get(adapter) or {}
    base = _interval((scores.get("base") or {}).get(metric))
    return {
        "task": name,
        "suite": task.get("suite"),
        "kind": task.get("kind"),
        "metric": metric,
        "higher_is_better": task.get("higher_is_better", True),
        "n": task.get("n_items"),
        "base": base,
        "adapter": _interval((scores.get(adapter) or {}).get(metric)) if adapter else None,
        "delta": paired.get("effect"),
        "delta_lo": paired.get("ci_low"),
        "delta_hi": paired.get("ci_high"),
        "unit": paired.get("unit"),
        "p_value": paired.get("p_value"),
        "significant": paired.get("significant"),
    }


def gate_verdicts(report: dict, gates) -> list[dict]:
    """One line per active gate, judged by the registry's own check (the same code promotion runs)."""
    if gates is None:
        return []
    verdicts = []
    for name, (value, threshold) in gates_mod.check_gates(report, gates).checked.items():
        attribute, _, task = name.partition(":")   # format_adherence:<task> is one gate per task
        gate = getattr(gates, attribute)
        if task:
            gate = gate.model_copy(update={"tasks": [task]})
        alone = gates_mod.check_gates(report, SimpleNamespace(**{attribute: gate}))
        verdicts.append({"name": name, "value": value, "threshold": threshold, "passed": alone.passed})
    return verdicts


def report_view(registry: Registry, vertical: str, version: int) -> dict:
    entry = registry.get(vertical, version)
    if entry.report_path is None:
        raise NotFound(f"{entry.ref} has no eval report attached")
    report = gates_mod.read_report(entry.report_path)
    if gates_mod.report_artifact_id(report) != entry.artifact_id:
        raise RegistryError(f"the report attached to {entry.ref} is for a different artifact")
    try:
        gates = gates_mod.load_gates(vertical)
    except DomainlmError:  # a vertical without a definition here still shows its numbers
        gates = None
    summary = dict(report.get("summary") or {})
    subject = report.get("subject") or {}
    adapter = summary.get("adapter") or subject.get("label")
    rows = [task_row(name, task, adapter) for name, task in (report.get("tasks") or {}).items()]
    return {
        "vertical": vertical,
        "version": version,
        "subject": {"label": adapter, "artifact_id": subject.get("artifact_id"),
                    "base_model_id": (subject.get("base") or {}).get("model_id")},
        "domain": [r for r in rows if r["suite"] == "domain" and r["higher_is_better"]],
        "domain_nll": [r for r in rows if r["suite"] == "domain" and not r["higher_is_better"]],
        "general": [r for r in rows if r["suite"] == "general"],
        "summary": {k: summary.get(k) for k in ("domain_gain", "general_regression", "significant", "p_value",
                                                  "nll_reduction")},
        "domain_effect": summary.get("domain_effect"),
        "gates": gate_verdicts(report, gates),
        "created_at": report.get("created_at"),
    }
