"""A training run's output: a PEFT folder + manifest.json (the artifacts contract) + a README.md data card.

The base model's chat template text is recorded in the manifest next to its sha256: serving renders prompts with
exactly the template the adapter was trained on (and refuses a base whose template hash differs).
"""

from __future__ import annotations

from pathlib import Path

from domainlm.artifacts.contract import write_artifact


def data_card(name: str, vertical: str, base: dict, sources: list[dict], stats: dict, metrics: dict,
              lora: dict) -> str:
    lines = [f"# {name}", "",
             f"LoRA adapter for the **{vertical}** vertical on `{base['model_id']}` (trained by domainlm).", "",
             "## Training data", "", "| source | rows used | licence | notes |", "|---|---|---|---|"]
    for source in sources:
        flags = [k.replace("_", " ") for k in ("restricted", "non_commercial", "research_only", "synthetic")
                 if source.get(k)]
        lines.append(f"| {source['name']} | {source.get('rows', '?')} | {source.get('licence', 'unknown')} | "
                     f"{', '.join(flags)} |")
    bad = stats.get("bad_rows", {})
    lines += ["", f"Rows: {stats.get('train_rows')} train, {stats.get('eval_rows')} held out; "
                  f"{bad.get('skipped', 0)} bad rows skipped {bad.get('by_reason', {})}; "
                  f"{stats.get('truncated_rows', 0)} truncated.",
              "", "## Adapter", "",
              f"r={lora['r']}, alpha={lora['alpha']}, dropout={lora['dropout']}, rslora={lora['rslora']}, "
              f"dora={lora['dora']}, targets={lora['target_modules']}", "", "## Metrics", ""]
    lines += [f"- {key}: {round(value, 4) if isinstance(value, float) else value}" for key, value in metrics.items()
              if not isinstance(value, (dict, list))]
    restricted = [s for s in sources if s.get("non_commercial") or s.get("research_only") or s.get("restricted")]
    if restricted:
        lines += ["", "## Licence restrictions", "",
                  "This adapter was trained on data whose licence restricts use: "
                  + "; ".join(f"{s['name']} ({s.get('licence')})" for s in restricted) + "."]
    return "\n".join(lines) + "\n"


def write_adapter(final: Path, peft_model, *, name: str, vertical: str, base: dict, sources: list[dict],
                  config: dict, metrics: dict, stats: dict, lora: dict) -> dict:
    def populate(tmp: Path) -> None:
        peft_model.save_pretrained(str(tmp), safe_serialization=True)
        (tmp / "README.md").write_text(data_card(name, vertical, base, sources, stats, metrics, lora),
                                       encoding="utf-8")

    return write_artifact(final, populate, name=name, vertical=vertical, base=base, data_sources=sources,
                          config=config, metrics=metrics)
