"""The model filing record: what a provider files with the regulator for a generative model (per adapter).

It gathers, from the artifact's manifest, the eval report and the vertical's definition: base model and hash,
data sources with licences and restrictions, training config, evaluation results with 95% intervals, and the
safety policy the gateway enforces. Markdown for people, JSON for machines.
"""

from __future__ import annotations

import json
from pathlib import Path

from domainlm.atomic import atomic_write_json, atomic_write_text


def _fmt_ci(block: dict | None) -> str:
    if not block:
        return "—"
    value, low, high = block.get("mean"), block.get("ci_low"), block.get("ci_high")
    if value is None:
        return "—"
    if low is None or high is None:
        return f"{value:.4g}"
    return f"{value:.4g} [{low:.4g}, {high:.4g}]"


def _task_rows(report: dict | None, entry: dict) -> dict:
    """Per task: primary metric, base and adapter means with 95% CIs, paired effect and p-value."""
    rows = {}
    label = ((report or {}).get("summary") or {}).get("adapter")
    for name, task in ((report or {}).get("tasks") or {}).items():
        metric = task.get("primary_metric")
        scores = task.get("scores", {})
        comparison = (task.get("comparisons") or {}).get(label, {})
        rows[name] = {"suite": task.get("suite"), "metric": metric, "n": task.get("n_items"),
                      "base": (scores.get("base") or {}).get(metric), "adapter": (scores.get(label) or {}).get(metric),
                      "effect": comparison.get("effect"), "unit": comparison.get("unit"),
                      "p_value": comparison.get("p_value")}
    return rows


def build_record(manifest: dict, report: dict | None, vertical, entry: dict, gates_passed: bool | None) -> dict:
    policy = vertical.policy
    return {
        "model": {
            "name": manifest.get("name"), "vertical": vertical.name, "version": entry.get("version"),
            "stage": entry.get("stage"), "artifact_id": entry.get("artifact_id"),
            "created_at": manifest.get("created_at"), "domainlm_version": manifest.get("domainlm_version"),
        },
        "base_model": manifest.get("base", {}),
        "data_sources": manifest.get("data_sources", []),
        "training_config": manifest.get("config", {}),
        "training_metrics": manifest.get("metrics", {}),
        "evaluation": {
            "report": entry.get("report_path"),
            "summary": (report or {}).get("summary", {}),
            "tasks": _task_rows(report, entry),
            "gates": vertical.gates.model_dump(), "gates_passed": gates_passed,
            # the fingerprint the report fixed before scoring (promotion refuses one that no longer matches)
            "gates_sha256": ((report or {}).get("gates") or {}).get("sha256"),
        },
        "safety_policy": policy.model_dump(),
        "system_prompt": vertical.system_prompt.model_dump(),
    }


def render_markdown(record: dict) -> str:
    m, base, ev = record["model"], record["base_model"], record["evaluation"]
    lines = [
        f"# Model filing record — {m['vertical']}@{m['version']}",
        "",
        "Record of a generative model offered to the public: base model, training data and licences, training",
        "configuration, evaluation with 95% bootstrap intervals, and the safety policy enforced at serving.",
        "",
        "## Model",
        f"- name: `{m['name']}` · vertical: `{m['vertical']}` · version: {m['version']} · stage: {m['stage']}",
        f"- artifact id (sha256 over file hashes): `{m['artifact_id']}`",
        f"- created: {m['created_at']} · domainlm {m['domainlm_version']}",
        "",
        "## Base model",
        f"- id: `{base.get('model_id')}`",
        f"- weights sha256: `{base.get('weights_sha256')}`",
        f"- chat template sha256: `{base.get('chat_template_sha256')}`",
        "",
        "## Training data",
        "| source | rows | licence | restrictions | sha256 |",
        "|---|---|---|---|---|",
    ]
    for src in record["data_sources"]:
        flags = [f for f in ("non_commercial", "research_only", "project_authored", "synthetic") if src.get(f)]
        lines.append(f"| {src.get('name')} | {src.get('rows')} | {src.get('licence')} | {', '.join(flags) or '—'} "
                     f"| `{str(src.get('sha256'))[:16]}…` |")
    lines += ["", "## Training configuration", "```json",
              json.dumps(record["training_config"], indent=2, ensure_ascii=False)[:6000], "```", "",
              "## Evaluation (means with 95% bootstrap intervals; paired bootstrap vs base)",
              "| task | suite | n | metric | base | adapter | effect | paired p |", "|---|---|---|---|---|---|---|---|"]
    for name, task in ev["tasks"].items():
        p, effect = task.get("p_value"), task.get("effect")
        effect_text = "—" if effect is None else f"{effect:+.3g} {task.get('unit') or ''}"
        lines.append(f"| {name} | {task.get('suite')} | {task.get('n')} | {task.get('metric')} "
                     f"| {_fmt_ci(task.get('base'))} | {_fmt_ci(task.get('adapter'))} | {effect_text} "
                     f"| {'—' if p is None else f'{p:.3g}'} |")
    summary = ev.get("summary") or {}
    lines += ["", "Summary: " + ", ".join(f"{k} = {v:.4g}" if isinstance(v, float) else f"{k} = {v}"
                                          for k, v in summary.items() if not isinstance(v, (dict, list))),
              f"Gates: `{json.dumps(ev['gates'])}` → {'passed' if ev['gates_passed'] else 'not passed'}", "",
              "## Safety policy enforced by the gateway", "```json",
              json.dumps(record["safety_policy"], indent=2, ensure_ascii=False), "```", ""]
    return "\n".join(lines)


def write_record(folder: Path, record: dict) -> tuple[Path, Path]:
    name = f"filing_{record['model']['vertical']}_v{record['model']['version']}"
    md, js = folder / f"{name}.md", folder / f"{name}.json"
    atomic_write_json(js, record)
    atomic_write_text(md, render_markdown(record))
    return md, js
