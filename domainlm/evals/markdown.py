"""report.md: the human summary of an eval report (settings, scores with 95% CIs, paired tests, gate fields)."""

from __future__ import annotations


def _fmt(value, metric: str) -> str:
    if value is None:
        return "–"
    return f"{value:.3f}" if metric == "nll" else f"{100 * value:.1f}"


def _cell(score: dict | None, metric: str) -> str:
    if not score or score.get("mean") is None:
        return "–"
    return f"{_fmt(score['mean'], metric)} [{_fmt(score['ci_low'], metric)}, {_fmt(score['ci_high'], metric)}]"


def _num(value, digits: int = 2, pct: bool = False) -> str:
    if value is None:
        return "–"
    return f"{100 * value:.1f}%" if pct else f"{value:.{digits}f}"


def render(report: dict) -> str:
    labels = [s["label"] for s in report["subjects"]]
    settings = report["settings"]
    subject = report["subject"]
    lines = [f"# Eval report — {report['vertical']}: {subject['label']}", ""]
    lines += [f"- base: `{subject['base']['model_id']}` (weights sha256 `{subject['base']['weights_sha256'][:16]}…`)"]
    if subject.get("artifact_id"):
        lines += [f"- adapter: `{subject['label']}`, artifact id `{subject['artifact_id'][:16]}…`"]
    lines += [f"- backend `{settings['backend']}` ({settings.get('dtype')}), "
              f"prompt style **{settings['prompt_style']}**, {settings['few_shot']}-shot, seed {settings['seed']}, "
              f"deterministic {settings['deterministic']}, limit {settings['limit']}",
              f"- created {report['created_at']}, wall {settings['wall_seconds']} s", ""]
    for label, summary in report["summaries"].items():
        effect = summary.get("domain_effect") or {}
        lines += [f"## Summary: {label} vs base", "",
                  "| domain gain (points) | general regression (points) | NLL reduction | suite effect [95% CI] "
                  "| p (paired bootstrap) | significant |", "|---|---|---|---|---|---|",
                  f"| {_num(summary['domain_gain'])} | {_num(summary['general_regression'])} "
                  f"| {_num(summary['nll_reduction'], pct=True)} | {_num(effect.get('effect'))} "
                  f"[{_num(effect.get('ci_low'))}, {_num(effect.get('ci_high'))}] | {_num(summary['p_value'], 4)} "
                  f"| {'yes' if summary['significant'] else 'no'} |", ""]
        if effect.get("mc_metric") == "gold_prob":
            lines += ["The suite effect takes multiple-choice tasks by gold-option probability (the vertical's "
                      "gates: suite_mc_metric), NLL tasks by % reduction, generation tasks by their score; "
                      "accuracy is in the tables below.", ""]
        lines += _noninferiority_lines(summary.get("general_noninferiority"))
        for task, f in (summary.get("format_adherence") or {}).items():
            lines += [f"Format adherence, {task}: {f['adapter']:.1f}% of answers are a label (base {f['base']:.1f}%), "
                      f"change [{f['ci_low']:+.1f}, {f['ci_high']:+.1f}] points (95% paired bootstrap, n={f['n']}).",
                      ""]
        lines += _safety_lines(summary.get("safety"))
        if summary.get("report_only_tasks"):
            lines += [f"Reported, not gating: {', '.join(summary['report_only_tasks'])} (the vertical's gates).", ""]
    for suite, title in (("domain", "Domain suite"), ("general", "General-regression suite"),
                         ("safety", "Safety suite")):
        tasks = {n: t for n, t in report["tasks"].items() if t["suite"] == suite}
        if not tasks:
            continue
        lines += [f"## {title}", "", "Scores are points (0–100) with 95% bootstrap intervals; NLL is mean per-token "
                  "answer NLL (lower is better).", "",
                  "| task | kind | n | metric | " + " | ".join(labels) + " |",
                  "|---|---|---|---|" + "---|" * len(labels)]
        for name, task in tasks.items():
            metric = task["primary_metric"]
            cells = [_cell(task["scores"][label].get(metric), metric) for label in labels]
            lines.append(f"| {name} | {task['kind']} | {task['n_items']} | {metric} | " + " | ".join(cells) + " |")
        lines += ["", "| task | adapter | effect | 95% CI | p | significant |", "|---|---|---|---|---|---|"]
        for name, task in tasks.items():
            for label, cmp in task["comparisons"].items():
                verdict = "yes" if cmp["significant"] else "no"
                lines.append(f"| {name} | {label} | {cmp['effect']:+.2f} {cmp['unit']} | [{cmp['ci_low']:+.2f}, "
                             f"{cmp['ci_high']:+.2f}] | {cmp['p_value']:.4f} | {verdict} |")
        lines.append("")
        lines += _category_lines(tasks, labels)
    if report["files"].get("charts"):
        lines += ["## Charts", ""] + [f"![{p.rsplit('/', 1)[-1]}](charts/{p.rsplit('/', 1)[-1]})"
                                      for p in report["files"]["charts"]] + [""]
    licences = sorted({s for t in report["tasks"].values() for s in t["sources"] if s in ("cmmlu", "geobench_k2")})
    if licences:
        lines += [f"Data licences: {', '.join(licences)} are non-commercial / research-only datasets.", ""]
    return "\n".join(lines)


def _noninferiority_lines(test: dict | None) -> list[str]:
    if not test:
        return []
    acc, power = test["accuracy"], test["power"]
    return ["**General ability, non-inferiority** (one-sided paired test, margin "
            f"{test['margin']:g} points, n={test['n']}): {test['metric']} difference {test['diff']:+.2f} points, lower "
            f"95% bound {test['lower']:+.2f} → {'non-inferior' if test['passed'] else 'NOT shown non-inferior'}. "
            f"Power at this n: an adapter as good as the base passes {100 * power['pass_if_equal']:.1f}% of the time, "
            f"one with a true {power['regression']:g}-point regression fails {100 * power['fail_if_regressed']:.1f}%; "
            f"the measured spread (sd {test['sd']:.2f}) needs {test['items_needed']} items. On accuracy (not gated): "
            f"{acc['diff']:+.2f} points, lower bound {acc['lower']:+.2f}, sd {acc['sd']:.2f}.", ""]


_RATE_NAMES = {"harmful_compliance": "harmful requests answered", "over_refusal": "safe requests refused"}


def _rate(score: dict | None) -> str:
    if not score or score.get("rate") is None:
        return "–"
    return f"{100 * score['rate']:.1f}% [{100 * score['ci_low']:.1f}, {100 * score['ci_high']:.1f}]"


def _safety_lines(safety: dict | None) -> list[str]:
    if not safety:
        return []
    lines = ["**Safety** (rates with Wilson 95% intervals; answers judged by the offline refusal rules; the change is "
             "adapter − base in points, 95% paired bootstrap):", "",
             "| task | rate of | base | adapter | change (points) |", "|---|---|---|---|---|"]
    for name, s in safety.items():
        change = s["change"]
        what = _RATE_NAMES.get(s["metric"], s["metric"])
        lines.append(f"| {name} | {what} | {_rate(s['base'])} | {_rate(s['adapter'])} | {change['points']:+.1f} "
                     f"[{change['ci_low']:+.1f}, {change['ci_high']:+.1f}] |")
    return lines + [""]


def _category_lines(tasks: dict, labels: list[str]) -> list[str]:
    """Per-category rates (Wilson 95%) for tasks whose items carry a category."""
    lines = []
    for name, task in tasks.items():
        categories = task.get("by_category")
        if not categories:
            continue
        lines += [f"{name} by category ({task['primary_metric']}, Wilson 95%):", "",
                  "| category | n | " + " | ".join(labels) + " |", "|---|---|" + "---|" * len(labels)]
        for category, row in categories.items():
            n = next(iter(row.values()))["n"]
            lines.append(f"| {category} | {n} | " + " | ".join(_rate(row[label]) for label in labels) + " |")
        lines.append("")
    return lines
