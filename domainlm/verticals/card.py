"""The data card of a vertical: sources, licences (restricted ones flagged), counts, sha256, splits, skipped rows,
and the decontamination report. A dict for manifests and the console, and a Markdown rendering for people."""

from __future__ import annotations

from collections import Counter

from domainlm import __version__
from domainlm.hashing import sha256_file_cached
from domainlm.paths import data_root

SPLIT_RULE = ("rows of a `hash` source go to eval when sha256(normalised opening question) mod 100 < {pct}, else train "
              "(same question → same side); `train`/`eval` sources keep their upstream split")


def _manifest() -> dict[str, str]:
    """file (relative to the data root) → sha256 recorded in the shared data's MANIFEST.jsonl."""
    import json

    path = data_root() / "MANIFEST.jsonl"
    if not path.is_file():
        return {}
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return {row["file"]: row["sha256"] for row in rows if "file" in row and "sha256" in row}


def _source_entry(loaded, manifest: dict[str, str]) -> dict:
    s = loaded.source
    files = []
    for path in loaded.files:
        entry = {"file": path.relative_to(loaded.root).as_posix(), "sha256": sha256_file_cached(path),
                 "bytes": path.stat().st_size}
        if s.dataset is not None:
            recorded = manifest.get(f"{s.dataset}/{entry['file']}")
            entry["matches_manifest"] = None if recorded is None else recorded == entry["sha256"]
        files.append(entry)
    langs = Counter(r["lang"] for r in loaded.rows)
    return {
        "name": s.name, "dataset": s.dataset, "path": str(loaded.root), "format": s.format, "files": files,
        "sha256": loaded.sha256, "licence": s.licence, "restricted": s.restricted,
        "non_commercial": s.non_commercial, "research_only": s.research_only,
        "project_authored": s.project_authored, "synthetic": s.synthetic, "split_rule": s.split,
        "rows": len(loaded.rows), "train": loaded.count("train"), "eval": loaded.count("eval"),
        "lang_mix": dict(sorted(langs.items())),
        "skipped": dict(loaded.skipped), "skipped_first_at": dict(loaded.skipped_where),
    }


def build_card(vertical, decontamination: bool = True) -> dict:
    loaded = vertical.load()
    manifest = _manifest() if any(x.source.dataset for x in loaded) else {}
    sources = [_source_entry(x, manifest) for x in loaded]
    card = {
        "vertical": vertical.name,
        "title": vertical.title,
        "domainlm_version": __version__,
        "split": SPLIT_RULE.format(pct=vertical.spec.eval_percent),
        "sources": sources,
        "totals": {
            "rows": sum(s["rows"] for s in sources),
            "train": sum(s["train"] for s in sources),
            "eval": sum(s["eval"] for s in sources),
            "skipped": sum(sum(s["skipped"].values()) for s in sources),
            "lang_mix": dict(sum((Counter(s["lang_mix"]) for s in sources), Counter())),
        },
        "licences": {
            "restricted": [s["name"] for s in sources if s["restricted"]],
            "non_commercial": [s["name"] for s in sources if s["non_commercial"]],
            "research_only": [s["name"] for s in sources if s["research_only"]],
            "project_authored": [s["name"] for s in sources if s["project_authored"]],
            "synthetic": [s["name"] for s in sources if s["synthetic"]],
        },
        "eval_suite": vertical.eval_suite,
        "general_suite": vertical.general_suite,
        "gates": vertical.gates.model_dump(),
    }
    if decontamination:
        report, dropped = vertical.decontamination()
        card["decontamination"] = report
        card["totals"]["train_after_decontamination"] = card["totals"]["train"] - len(dropped)
        # the dev carve (never trained on; `domainlm sweep` scores there) comes out of those rows
        card["totals"]["dev"] = len(vertical.dev_ids())
    return card


def _flags(s: dict) -> str:
    flags = [label for key, label in (("non_commercial", "NON-COMMERCIAL"), ("research_only", "RESEARCH ONLY"),
                                      ("project_authored", "project-authored"), ("synthetic", "synthetic"))
             if s[key]]
    return ", ".join(flags) or "–"


def card_markdown(card: dict) -> str:
    t = card["totals"]
    lines = [f"# Data card: {card['title']['en']} / {card['title']['zh']} (`{card['vertical']}`)", "",
             f"Split: {card['split']}.", "",
             "| source | licence | flags | rows | train | eval | skipped | lang | sha256 |",
             "|---|---|---|---:|---:|---:|---:|---|---|"]
    for s in card["sources"]:
        skipped = ", ".join(f"{k}: {v}" for k, v in s["skipped"].items()) or "0"
        langs = ", ".join(f"{k} {v}" for k, v in s["lang_mix"].items())
        lines.append(f"| {s['name']} | {s['licence']} | {_flags(s)} | {s['rows']} | {s['train']} | {s['eval']} | "
                     f"{skipped} | {langs} | `{s['sha256'][:16]}` |")
    lines += ["", (f"Totals: {t['rows']} rows, {t['train']} train, {t['eval']} eval, {t['skipped']} skipped; "
                   f"languages {t['lang_mix']}.")]
    lic = card["licences"]
    if lic["restricted"]:
        lines += ["", (f"**Restricted licences**: non-commercial {lic['non_commercial'] or '–'}; research-only "
                       f"{lic['research_only'] or '–'}. Adapters trained on them inherit these limits.")]
    if lic["project_authored"]:
        lines += ["", "Project-authored (written in this repository, not from a public set): "
                      f"{lic['project_authored']}."]
    report = card.get("decontamination")
    if report:
        lines += ["", "## Decontamination", "",
                  (f"{report['method']}; {report['train_rows_checked']} training rows checked, "
                   f"{report['dropped_rows']} dropped (public eval sets: {report['mode']}, own held-out split: "
                   f"{report['heldout_mode']}). Train rows after decontamination: "
                   f"{t['train_after_decontamination']}, of which {t['dev']} form the dev split (never trained on)."),
                  "", "| training source | eval set | overlapping train rows | eval items hit |", "|---|---|---:|---:|"]
        hits = [p for p in report["pairs"] if p["train_rows"]]
        lines += [f"| {p['train_source']} | {p['eval_set']} | {p['train_rows']} | {p['eval_items']} |" for p in hits]
        if not hits:
            lines.append("| (none) | | 0 | 0 |")
        lines += ["", f"Eval sets checked: {', '.join(sorted(report['eval_sets']))}."]
    lines += ["", f"Eval suite: {', '.join(card['eval_suite'])}; general suite: {', '.join(card['general_suite'])}.",
              f"Gates: {card['gates']}.", ""]
    return "\n".join(lines)
