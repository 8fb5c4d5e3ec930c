"""`domainlm data list|inspect|card|synth`: look at a vertical's data, write its data card, expand it."""

from __future__ import annotations

import json
import time
from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser("data", help="inspect, card and synthesize vertical data")
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    ls = sub.add_parser("list", help="registered verticals, their folders and sources")
    ls.set_defaults(func=_list)

    ins = sub.add_parser("inspect", help="counts, language mix, token-length histogram (PNG), licence summary")
    ins.add_argument("vertical")
    ins.add_argument("--out", default=None, help="folder for token_lengths.png + inspect.json "
                                                 "(default $DOMAINLM_HOME/reports/data/<vertical>)")
    ins.add_argument("--model", default=None, help="base model whose tokenizer counts tokens (default smollm2-135m)")
    ins.add_argument("--max-rows", type=int, default=None, help="measure a deterministic sample of this many rows")
    ins.add_argument("--json", action="store_true", help="print the summary as JSON")
    ins.set_defaults(func=_inspect)

    card = sub.add_parser("card", help="write the data card (JSON + Markdown), decontamination report included")
    card.add_argument("vertical")
    card.add_argument("--out", default=None, help="folder (default $DOMAINLM_HOME/reports/data/<vertical>)")
    card.add_argument("--no-decontamination", action="store_true", help="skip the n-gram check (faster)")
    card.set_defaults(func=_card)

    syn = sub.add_parser("synth", help="expand seeds with a teacher model behind an OpenAI-compatible endpoint")
    syn.add_argument("vertical")
    syn.add_argument("--endpoint", required=True, help="base URL, e.g. http://127.0.0.1:8000/v1 (the gateway works)")
    syn.add_argument("--model", default=None, help="teacher model (default: first listed by /v1/models)")
    syn.add_argument("--api-key", default="EMPTY", help="bearer key for the endpoint (or OPENAI_API_KEY)")
    syn.add_argument("-n", "--num", type=int, default=20, help="candidates to generate (default 20)")
    syn.add_argument("--lang", choices=("en", "zh", "both"), default="both")
    syn.add_argument("--shots", type=int, default=3, help="seed questions shown per candidate")
    syn.add_argument("--seed", type=int, default=0)
    syn.add_argument("--temperature", type=float, default=0.8)
    syn.add_argument("--max-question-tokens", type=int, default=96)
    syn.add_argument("--max-answer-tokens", type=int, default=384)
    syn.add_argument("--out", default=None, help="output JSONL (default $DOMAINLM_HOME/synth/<vertical>/<time>.jsonl)")
    syn.set_defaults(func=_synth)


def _default_dir(vertical: str) -> Path:
    from domainlm.paths import home

    return home() / "reports" / "data" / vertical


def _list(args) -> int:
    from domainlm.verticals import get_vertical, list_verticals

    for name in list_verticals():
        v = get_vertical(name)
        sources = ", ".join(s.name for s in v.spec.sources)
        print(f"{name:<12} {v.title['en']} / {v.title['zh']}  folder={v.folder}  sources: {sources}")
    return 0


def _inspect(args) -> int:
    from domainlm.verticals import get_vertical
    from domainlm.verticals.inspection import format_summary, inspect_vertical

    out = Path(args.out) if args.out else _default_dir(args.vertical)
    summary = inspect_vertical(get_vertical(args.vertical), out, model=args.model, max_rows=args.max_rows)
    print(json.dumps(summary, indent=2, ensure_ascii=False) if args.json else format_summary(summary))
    return 0


def _card(args) -> int:
    from domainlm.atomic import atomic_write_json, atomic_write_text
    from domainlm.verticals import get_vertical
    from domainlm.verticals.card import card_markdown

    out = Path(args.out) if args.out else _default_dir(args.vertical)
    card = get_vertical(args.vertical).data_card(decontamination=not args.no_decontamination)
    atomic_write_json(out / "data_card.json", card)
    markdown = card_markdown(card)
    atomic_write_text(out / "data_card.md", markdown)
    print(markdown)
    print(f"written: {out / 'data_card.json'}, {out / 'data_card.md'}")
    return 0


def _synth(args) -> int:
    import os

    from domainlm.paths import home
    from domainlm.verticals import get_vertical
    from domainlm.verticals.synth import SynthConfig, synthesize

    vertical = get_vertical(args.vertical)
    api_key = args.api_key if args.api_key != "EMPTY" else os.environ.get("OPENAI_API_KEY", "EMPTY")
    cfg = SynthConfig(endpoint=args.endpoint, model=args.model, api_key=api_key, n=args.num, lang=args.lang,
                      shots=args.shots, seed=args.seed, temperature=args.temperature,
                      max_question_tokens=args.max_question_tokens, max_answer_tokens=args.max_answer_tokens)
    out = Path(args.out) if args.out else home() / "synth" / vertical.name / f"{time.strftime('%Y%m%d-%H%M%S')}.jsonl"
    report = synthesize(vertical, cfg, out)
    print(json.dumps(report["stages"], indent=2, ensure_ascii=False))
    print(f"kept {report['stages']['kept']} of {report['stages']['generated']} → {out}\n"
          f"to train on them, add to {vertical.spec_path or vertical.folder}:\n"
          f"  - {{name: synth, path: {out.parent}, files: [{out.name}], format: qa_jsonl, lang: row, "
          f"licence: <teacher's output terms>, synthetic: true}}")
    return 0
