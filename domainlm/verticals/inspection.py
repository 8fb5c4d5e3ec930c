"""`domainlm data inspect`: counts, language mix, token lengths (histogram PNG) and licence summary of a vertical.

Token lengths are those training sees: each row with the vertical's system prompt, rendered by the base model's
chat template and tokenised by its tokenizer.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from domainlm.atomic import atomic_write_bytes, atomic_write_json
from domainlm.verticals.card import build_card


def load_tokenizer(folder: Path):
    """The fast tokenizer straight from tokenizer.json (AutoTokenizer's imports cost ~10 s more), else Auto."""
    if (Path(folder) / "tokenizer.json").is_file():
        from transformers import PreTrainedTokenizerFast

        return PreTrainedTokenizerFast.from_pretrained(folder)
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(folder)


def token_lengths(rows: list[dict], tokenizer, batch: int = 512) -> list[int]:
    texts = [tokenizer.apply_chat_template(r["messages"], tokenize=False) for r in rows]
    lengths: list[int] = []
    for start in range(0, len(texts), batch):
        encoded = tokenizer(texts[start:start + batch], add_special_tokens=False)["input_ids"]
        lengths += [len(ids) for ids in encoded]
    return lengths


def _stats(values: list[int]) -> dict:
    if not values:
        return {"rows": 0}
    arr = np.asarray(values)
    return {"rows": int(arr.size), "mean": round(float(arr.mean()), 1), "p50": int(np.percentile(arr, 50)),
            "p95": int(np.percentile(arr, 95)), "max": int(arr.max())}


def histogram_png(by_lang: dict[str, list[int]], title: str) -> bytes:
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    everything = [n for values in by_lang.values() for n in values]
    top = max(everything) if everything else 1
    bins = np.unique(np.geomspace(8, max(top, 16) + 1, 40).astype(int))  # log-spaced: lengths span 3 decades
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    for lang, values in sorted(by_lang.items()):
        if values:
            ax.hist(values, bins=bins, alpha=0.6, label=f"{lang} (n={len(values)}, p50={int(np.median(values))})")
    ax.set_xscale("log")
    ax.set_xlabel("tokens per row (chat template, system prompt included)")
    ax.set_ylabel("rows")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def inspect_vertical(vertical, out_dir: Path, model: str | None = None, max_rows: int | None = None) -> dict:
    """Write token_lengths.png and inspect.json under out_dir; return the summary."""
    from domainlm.models import resolve_base

    card = build_card(vertical, decontamination=False)
    # every parsed row of both splits, as training would render it (before decontamination drops any)
    rows = [{"id": r["id"], "lang": r["lang"],
             "messages": [{"role": "system", "content": vertical.system_prompt(r["lang"])}] + r["messages"]}
            for loaded in vertical.load() for r in loaded.rows]
    if max_rows is not None and len(rows) > max_rows:  # deterministic sample, same rows every run
        rows = sorted(rows, key=lambda r: hashlib.sha256(r["id"].encode()).digest())[:max_rows]
    base = resolve_base(model)
    tokenizer = load_tokenizer(base.path)
    lengths = token_lengths(rows, tokenizer)
    by_lang: dict[str, list[int]] = {}
    for row, n in zip(rows, lengths, strict=True):
        by_lang.setdefault(row["lang"], []).append(n)
    png = out_dir / "token_lengths.png"
    atomic_write_bytes(png, histogram_png(by_lang, f"{vertical.name}: token lengths ({base.model_id})"))
    summary = {
        "vertical": vertical.name,
        "sources": [{k: s[k] for k in ("name", "rows", "train", "eval", "skipped", "lang_mix", "licence",
                                       "non_commercial", "research_only", "project_authored", "synthetic")}
                    for s in card["sources"]],
        "totals": card["totals"],
        "lang_mix": card["totals"]["lang_mix"],
        "licences": card["licences"],
        "tokens": {"model": base.model_id, "rows_measured": len(rows), "all": _stats(lengths),
                   **{lang: _stats(values) for lang, values in sorted(by_lang.items())}},
        "histogram": str(png),
    }
    atomic_write_json(out_dir / "inspect.json", summary)
    return summary


def format_summary(summary: dict) -> str:
    lines = [f"vertical {summary['vertical']}",
             f"{'source':<22}{'rows':>8}{'train':>8}{'eval':>7}{'skipped':>9}  lang         licence"]
    for s in summary["sources"]:
        langs = " ".join(f"{k}:{v}" for k, v in s["lang_mix"].items())
        flags = "".join([" [non-commercial]" if s["non_commercial"] else "",
                         " [research-only]" if s["research_only"] else "",
                         " [project-authored]" if s["project_authored"] else "",
                         " [synthetic]" if s["synthetic"] else ""])
        lines.append(f"{s['name']:<22}{s['rows']:>8}{s['train']:>8}{s['eval']:>7}{sum(s['skipped'].values()):>9}  "
                     f"{langs:<12} {s['licence']}{flags}")
    t = summary["totals"]
    lines.append(f"{'total':<22}{t['rows']:>8}{t['train']:>8}{t['eval']:>7}{t['skipped']:>9}  "
                 + " ".join(f"{k}:{v}" for k, v in t["lang_mix"].items()))
    tok = summary["tokens"]
    lines.append(f"tokens ({tok['model']}, {tok['rows_measured']} rows): " + "; ".join(
        f"{key} p50={s['p50']} p95={s['p95']} max={s['max']}" for key, s in tok.items()
        if isinstance(s, dict) and s.get("rows")))
    lic = summary["licences"]
    lines.append(f"licences: restricted {lic['restricted'] or 'none'}; "
                 f"non-commercial {lic['non_commercial'] or 'none'}; research-only {lic['research_only'] or 'none'}; "
                 f"project-authored {lic['project_authored'] or 'none'}")
    lines.append(f"histogram: {summary['histogram']}")
    return "\n".join(lines)
