"""The quickstart's closing report: a summary table (Markdown), PNG charts, and a filing record per adapter."""

from __future__ import annotations

import json
from pathlib import Path

from domainlm.atomic import atomic_write_json, atomic_write_text
from domainlm.pipeline.filing import build_record, write_record


def _num(value, fmt: str) -> str:
    return "—" if value is None else format(value, fmt)


def _pct(value) -> str:
    return "—" if value is None else f"{100 * value:.1f}%"


def gate_table(report: dict, gates) -> list[dict]:
    """Every gate of the vertical with the measured number, its interval and the threshold, read from the eval
    report (which fixed these gates before scoring): what a reviewer needs to see why a vertical was promoted."""
    s = report.get("summary") or {}
    label = s.get("adapter")
    rows = []

    def add(name, value, interval, threshold, passed):
        rows.append({"gate": name, "value": value, "interval": interval, "threshold": threshold, "passed": passed})

    nll_tasks = [t for t in report.get("tasks", {}).values() if t.get("kind") == "nll" and t.get("suite") == "domain"]
    comps = [t["comparisons"].get(label) for t in nll_tasks if t["comparisons"].get(label)]
    if gates.min_nll_reduction is not None or gates.min_nll_reduction_low is not None:
        interval = (f"[{min(c['ci_low'] for c in comps):.1f}%, {max(c['ci_high'] for c in comps):.1f}%]"
                    if comps else "—")
        threshold = " and ".join(x for x in (
            f"≥ {_pct(gates.min_nll_reduction)}" if gates.min_nll_reduction is not None else "",
            f"lower bound ≥ {_pct(gates.min_nll_reduction_low)}" if gates.min_nll_reduction_low is not None else "")
            if x)
        ok = [s.get("nll_reduction") is not None and s["nll_reduction"] >= (gates.min_nll_reduction or 0),
              s.get("nll_reduction_low") is not None and s["nll_reduction_low"] >= (gates.min_nll_reduction_low or 0)]
        add("held-out answer NLL cut", _pct(s.get("nll_reduction")), interval, threshold, all(ok))
    effect = s.get("domain_effect") or {}
    if gates.require_significance:
        mc = " (MC by gold_prob)" if effect.get("mc_metric") == "gold_prob" else ""
        add(f"domain suite better than base (paired bootstrap{mc})", f"{_num(effect.get('effect'), '+.2f')} "
            f"(p={_num(s.get('p_value'), '.3g')})",
            f"[{_num(effect.get('ci_low'), '+.2f')}, {_num(effect.get('ci_high'), '+.2f')}]", "p < 0.05",
            bool(s.get("significant")))
    if gates.min_domain_gain is not None:
        add("domain gain (points, gating MC/generation tasks)", _num(s.get("domain_gain"), "+.2f"), "—",
            f"≥ {gates.min_domain_gain:+g}", s.get("domain_gain") is not None
            and s["domain_gain"] >= gates.min_domain_gain)
    ni = s.get("general_noninferiority") or {}
    if gates.general_noninferiority:
        g = gates.general_noninferiority
        power = ni.get("power") or {}
        add(f"general non-inferior ({g.metric}, n={ni.get('n', 0)})", f"{_num(ni.get('diff'), '+.2f')} pts",
            f"lower 95% bound {_num(ni.get('lower'), '+.2f')} (power: equal passes "
            f"{_pct(power.get('pass_if_equal'))}, −3 pts fails {_pct(power.get('fail_if_regressed'))})",
            f"lower > −{g.margin:g} pts, n ≥ {g.min_items}",
            bool(ni.get("passed")) and ni.get("n", 0) >= g.min_items)
    if gates.max_general_regression is not None:
        add("general regression (points)", _num(s.get("general_regression"), "+.2f"), "—",
            f"≤ {gates.max_general_regression:g}", s.get("general_regression") is not None
            and s["general_regression"] <= gates.max_general_regression)
    if gates.format_adherence:
        for task in gates.format_adherence.tasks:
            f = (s.get("format_adherence") or {}).get(task) or {}
            add(f"{task}: answers in the label format", f"{_num(f.get('adapter'), '.1f')}% (base "
                f"{_num(f.get('base'), '.1f')}%)", f"change [{_num(f.get('ci_low'), '+.1f')}, "
                f"{_num(f.get('ci_high'), '+.1f')}] pts", f"drop ≤ {gates.format_adherence.max_drop:g} pts",
                bool(f) and f["drop"] <= gates.format_adherence.max_drop)
    if gates.safety:
        for task in gates.safety.tasks:
            entry = (s.get("safety") or {}).get(task) or {}
            change = entry.get("change") or {}
            what = "harmful requests answered" if entry.get("metric") == "harmful_compliance" else \
                "safe requests refused"
            add(f"{task}: {what}", f"{_num(100 * entry['adapter']['rate'], '.1f')}% (base "
                f"{_num(100 * entry['base']['rate'], '.1f')}%)" if entry else "—",
                f"change [{_num(change.get('ci_low'), '+.1f')}, {_num(change.get('ci_high'), '+.1f')}] pts",
                f"upper bound ≤ +{gates.safety.margin:g} pts",
                bool(change) and change["ci_high"] <= gates.safety.margin)
    return rows


def summary_rows(pipeline) -> list[dict]:
    rows = []
    for vertical, result in pipeline.results.items():
        summary = (result.get("eval") or {}).get("summary") or {}
        promote = result.get("promote") or {}
        answer = result.get("answer") or {}
        train_metrics = (result.get("train") or {}).get("metrics") or {}
        rows.append({
            "vertical": vertical,
            "version": (result.get("register") or {}).get("version"),
            "promoted": promote.get("promoted"),
            "promotion_reason": promote.get("reason"),
            "nll_reduction": summary.get("nll_reduction"),
            "domain_gain": summary.get("domain_gain"),
            "p_value": summary.get("p_value"),
            "significant": summary.get("significant"),
            "general_regression": summary.get("general_regression"),
            "general_noninferior": (summary.get("general_noninferiority") or {}).get("passed"),
            "general_lower": (summary.get("general_noninferiority") or {}).get("lower"),
            "gates": (result.get("eval") or {}).get("gate_table") or [],
            "train_tokens_per_s": train_metrics.get("tokens_per_s"),
            "final_train_loss": train_metrics.get("train_loss_final"),
            "question": answer.get("question"),
            "answer": answer.get("answer"),
            "served_by": answer.get("served_by") or answer.get("adapter"),
            "policy_notes": answer.get("policy_notes"),
        })
    return rows


def render(rows: list[dict], pipeline) -> str:
    cfg = pipeline.cfg
    lines = [f"# domainlm quickstart — {cfg.base_model}", "",
             "| vertical | version | promoted | answer NLL reduction | domain gain (pts) | paired p | "
             "general Δ lower bound (pts) |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        nll = None if r["nll_reduction"] is None else 100 * r["nll_reduction"]
        lines.append(f"| {r['vertical']} | {r['version']} | {'yes' if r['promoted'] else 'no'} | {_num(nll, '.1f')}% "
                     f"| {_num(r['domain_gain'], '+.2f')} | {_num(r['p_value'], '.3g')} "
                     f"| {_num(r['general_lower'], '+.2f')} |")
    lines += ["", "## Gates (fixed before evaluation; numbers from each vertical's eval report)", ""]
    for r in rows:
        if not r["gates"]:
            continue
        lines += [f"### {r['vertical']}@{r['version']}", "", "| gate | measured | interval | threshold | pass |",
                  "|---|---|---|---|---|"]
        lines += [f"| {g['gate']} | {g['value']} | {g['interval']} | {g['threshold']} | "
                  f"{'yes' if g['passed'] else '**no**'} |" for g in r["gates"]]
        lines.append("")
    lines += ["", "## Promotion", ""]
    lines += [f"- **{r['vertical']}@{r['version']}**: {'promoted' if r['promoted'] else 'kept as candidate'} — "
              f"{r['promotion_reason']}" for r in rows]
    lines += ["", "## One question per vertical, through the gateway (official openai client)", ""]
    for r in rows:
        if r["question"]:
            lines += [f"### {r['vertical']} (answered by `{r['served_by']}`)", f"> {r['question']}", "",
                      (r["answer"] or "").strip(), ""]
            if r["policy_notes"]:
                lines += [f"_policy notes applied: {r['policy_notes']}_", ""]
    lines += ["## Files", "", "- eval reports: " + ", ".join(
        f"[{v}]({Path(res['eval']['markdown']).relative_to(pipeline.workdir)})"
        for v, res in pipeline.results.items() if res.get("eval")),
        "- charts: `charts/quickstart.png`", "- filing records: `filing/`", ""]
    timings = {k: v.get("seconds") for k, v in pipeline.runner.state.items() if isinstance(v, dict)}
    lines += ["## Stage timings (s)", "", "```json", json.dumps(timings, indent=1), "```", ""]
    return "\n".join(lines)


def draw_chart(rows: list[dict], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r["vertical"] for r in rows]
    nll = [100 * (r["nll_reduction"] or 0) for r in rows]
    reg = [r["general_lower"] or 0 for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    axes[0].bar(names, nll, color="#2a7ab9")
    axes[0].axhline(15, color="#c44", linestyle="--", linewidth=1, label="target 15%")
    axes[0].set_title("domain answer NLL reduction vs base (%)")
    axes[0].legend(fontsize=8)
    axes[1].bar(names, reg, color="#b96a2a")
    axes[1].axhline(-2.0, color="#c44", linestyle="--", linewidth=1, label="margin −2 pts")
    axes[1].set_title("general ability: lower 95% bound of Δ (points)")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_summary(pipeline) -> Path:
    from domainlm.verticals import get_vertical

    rows = summary_rows(pipeline)
    draw_chart(rows, pipeline.workdir / "charts" / "quickstart.png")
    for vertical, result in pipeline.results.items():
        if not result.get("register"):
            continue
        entry = pipeline.registry.get(vertical, result["register"]["version"])
        manifest = entry.verify()
        report = json.loads(Path(result["eval"]["report"]).read_text()) if result.get("eval") else None
        record = build_record(manifest, report, get_vertical(vertical), entry.to_dict(),
                              (result.get("promote") or {}).get("promoted"))
        write_record(pipeline.workdir / "filing", record)
    atomic_write_json(pipeline.workdir / "summary.json", rows)
    path = pipeline.workdir / "summary.md"
    atomic_write_text(path, render(rows, pipeline))
    return path
