"""The quickstart's closing report: a summary table (Markdown), PNG charts, and a filing record per adapter."""

from __future__ import annotations

import json
from pathlib import Path

from domainlm.atomic import atomic_write_json, atomic_write_text
from domainlm.pipeline.filing import build_record, write_record


def _num(value, fmt: str) -> str:
    return "—" if value is None else format(value, fmt)


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
             "general regression (pts) |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        nll = None if r["nll_reduction"] is None else 100 * r["nll_reduction"]
        lines.append(f"| {r['vertical']} | {r['version']} | {'yes' if r['promoted'] else 'no'} | {_num(nll, '.1f')}% "
                     f"| {_num(r['domain_gain'], '+.2f')} | {_num(r['p_value'], '.3g')} "
                     f"| {_num(r['general_regression'], '+.2f')} |")
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
    reg = [r["general_regression"] or 0 for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    axes[0].bar(names, nll, color="#2a7ab9")
    axes[0].axhline(15, color="#c44", linestyle="--", linewidth=1, label="target 15%")
    axes[0].set_title("domain answer NLL reduction vs base (%)")
    axes[0].legend(fontsize=8)
    axes[1].bar(names, reg, color="#b96a2a")
    axes[1].axhline(1.0, color="#c44", linestyle="--", linewidth=1, label="limit 1.0 pt")
    axes[1].set_title("general regression (points, lower is better)")
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
