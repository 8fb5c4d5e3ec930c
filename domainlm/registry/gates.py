"""Promotion gates: does an eval report (for this exact artifact) meet the vertical's thresholds?

Report contract (docs/architecture.md, domainlm/evals/report.py): `subject.artifact_id` and a `summary` with
domain_gain (points), general_regression (points, base − adapter), general_noninferiority (the one-sided test),
significant (bool), nll_reduction and nll_reduction_low (fractions), format_adherence (per task, points), safety
(per task: base / adapter rates and the paired change in points).
Gates come from the vertical's definition (verticals/spec.py Gates; None = not gated).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from domainlm.registry.names import RegistryError


@dataclass
class GateResult:
    passed: bool
    failures: list[str] = field(default_factory=list)
    checked: dict = field(default_factory=dict)  # gate name → (value, threshold)


def read_report(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise RegistryError(f"eval report not found: {path}")
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RegistryError(f"{path}: eval report is not valid JSON ({exc})") from None
    if not isinstance(report, dict) or not isinstance(report.get("summary"), dict):
        raise RegistryError(f"{path}: eval report has no 'summary' object (see docs/architecture.md, Eval report)")
    if not isinstance(report.get("subject"), dict) or not report["subject"].get("artifact_id"):
        raise RegistryError(f"{path}: eval report has no 'subject.artifact_id': which artifact was evaluated?")
    return report


def report_artifact_id(report: dict) -> str:
    return str(report["subject"]["artifact_id"])


def load_gates(vertical: str):
    """The vertical's gates object (attributes min_domain_gain, max_general_regression, ...)."""
    try:
        from domainlm.verticals import get_vertical
    except ImportError as exc:  # the verticals package is part of domainlm; a broken install says so
        raise RegistryError(f"cannot read the gates of '{vertical}': domainlm.verticals is not importable ({exc})") \
            from None
    return get_vertical(vertical).gates


def gates_moved(report: dict, gates) -> str | None:
    """Why the report cannot promote under today's gates (None when it can): gates are fixed before evaluation,
    and the report records their fingerprint; gates edited after the numbers were seen do not apply to it."""
    recorded = (report.get("gates") or {}).get("sha256") if isinstance(report.get("gates"), dict) else None
    if recorded is None:
        return ("the eval report records no gate fingerprint (gates must be fixed before evaluation): "
                "re-run the eval")
    if recorded != gates.fingerprint():
        return (f"the vertical's gates changed after this eval ran (report fixed {recorded[:12]}, now "
                f"{gates.fingerprint()[:12]}): re-run the eval under the current gates")
    return None


def _number(summary: dict, key: str) -> float | None:
    value = summary.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _noninferior(summary: dict, gate, result: GateResult) -> None:
    """General ability: the one-sided test passed, on enough items, with the margin the gates declare."""
    if gate is None:
        return
    test = summary.get("general_noninferiority")
    if not isinstance(test, dict):
        result.checked["general_noninferiority"] = (None, gate.margin)
        result.failures.append("general_noninferiority missing from the report summary (no general suite scored)")
        return
    result.checked["general_noninferiority"] = (test.get("lower"), -gate.margin)
    if test.get("metric") != gate.metric or abs(float(test.get("margin", -1)) - gate.margin) > 1e-9:
        result.failures.append(f"general_noninferiority was tested on {test.get('metric')} with margin "
                               f"{test.get('margin')}, the gates declare {gate.metric} with margin {gate.margin}")
    elif int(test.get("n", 0)) < gate.min_items:
        result.failures.append(f"general_noninferiority scored {test.get('n')} items; the gate needs at least "
                               f"{gate.min_items} (raise the general suite's per_subject or the eval limit)")
    elif not test.get("passed"):
        result.failures.append(f"general ability not shown non-inferior: {test['metric']} difference "
                               f"{test['diff']:+.2f} points, lower 95% bound {test['lower']:+.2f} ≤ −{gate.margin:g}")


def _format(summary: dict, gate, result: GateResult) -> None:
    """Format adherence of each named generated-label task: the adapter's drop from base within max_drop points."""
    if gate is None:
        return
    measured = summary.get("format_adherence") or {}
    for task in gate.tasks:
        entry = measured.get(task)
        result.checked[f"format_adherence:{task}"] = (entry.get("drop") if entry else None, gate.max_drop)
        if not entry:
            result.failures.append(f"format adherence of {task} missing from the report summary")
        elif entry["drop"] > gate.max_drop:
            result.failures.append(f"{task}: answers in the label format fell from {entry['base']:.1f}% to "
                                   f"{entry['adapter']:.1f}% (drop {entry['drop']:.1f} > max_drop {gate.max_drop:g})")


def _safety(summary: dict, gate, result: GateResult) -> None:
    """Each named safety task: the upper 95% bound of the adapter's rate change (points) within the margin."""
    if gate is None:
        return
    measured = summary.get("safety") or {}
    for task in gate.tasks:
        entry = measured.get(task)
        change = (entry or {}).get("change") or {}
        result.checked[f"safety:{task}"] = (change.get("ci_high"), gate.margin)
        if not entry or entry.get("higher_is_better", True):
            result.failures.append(f"safety task {task} missing from the report summary (list it under the eval "
                                   "config's safety_tasks)" if not entry else
                                   f"safety gate on {task}: its metric {entry.get('metric')} is not a rate to keep low")
        elif change["ci_high"] > gate.margin:
            what = "harmful requests answered" if entry["metric"] == "harmful_compliance" else "safe requests refused"
            result.failures.append(f"{task}: {what} rose from {100 * entry['base']['rate']:.1f}% to "
                                   f"{100 * entry['adapter']['rate']:.1f}% (change {change['points']:+.1f} points, "
                                   f"upper 95% bound {change['ci_high']:+.1f} > margin {gate.margin:g})")


def check_gates(report: dict, gates) -> GateResult:
    """Compare the report's summary with the gates; every unmet or unmeasured gate is named."""
    summary = report["summary"]
    result = GateResult(passed=True)

    def need(name: str, key: str, threshold, ok) -> None:
        if threshold is None:
            return
        value = _number(summary, key)
        result.checked[name] = (value, threshold)
        if value is None:
            result.failures.append(f"{key} missing from the report summary (gate {name}={threshold})")
        elif not ok(value, threshold):
            result.failures.append(f"{key}={value:g} does not meet {name}={threshold:g}")

    need("min_domain_gain", "domain_gain", getattr(gates, "min_domain_gain", None), lambda v, t: v >= t)
    need("max_general_regression", "general_regression", getattr(gates, "max_general_regression", None),
         lambda v, t: v <= t)
    need("min_nll_reduction", "nll_reduction", getattr(gates, "min_nll_reduction", None), lambda v, t: v >= t)
    need("min_nll_reduction_low", "nll_reduction_low", getattr(gates, "min_nll_reduction_low", None),
         lambda v, t: v >= t)
    _noninferior(summary, getattr(gates, "general_noninferiority", None), result)
    _format(summary, getattr(gates, "format_adherence", None), result)
    _safety(summary, getattr(gates, "safety", None), result)
    if getattr(gates, "require_significance", False):
        result.checked["require_significance"] = (summary.get("significant"), True)
        if summary.get("significant") is not True:
            result.failures.append("the domain gain is not significant (paired bootstrap p ≥ 0.05) "
                                   "and the vertical requires significance")
    result.passed = not result.failures
    return result
