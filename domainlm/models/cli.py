"""`domainlm model prepare|info|generate`."""

from __future__ import annotations

import json


def register(subparsers) -> None:
    parser = subparsers.add_parser("model", help="prepare, inspect and query base models")
    sub = parser.add_subparsers(dest="model_command", metavar="ACTION", required=True)

    prep = sub.add_parser("prepare", help="convert the embedded default (or check a local/hub model) into the cache")
    prep.add_argument("name", nargs="?", default=None, help="embedded name (default smollm2-135m), local dir or hub id")
    prep.add_argument("--no-check", action="store_true", help="skip the greedy smoke generation")
    prep.set_defaults(func=_prepare)

    info = sub.add_parser("info", help="print the resolved model: path, hashes, family")
    info.add_argument("name", nargs="?", default=None)
    info.set_defaults(func=_info)

    gen = sub.add_parser("generate", help="answer one prompt with the base's chat template")
    gen.add_argument("--model", default=None, help="base model (default smollm2-135m)")
    gen.add_argument("--adapter", default=None, help="optional LoRA adapter directory")
    gen.add_argument("--prompt", required=True)
    gen.add_argument("--system", default=None, help="optional system prompt")
    gen.add_argument("--max-new-tokens", type=int, default=128)
    gen.set_defaults(func=_generate)


def _prepare(args) -> int:
    from domainlm.models import embedded, resolve

    name = args.name or resolve.DEFAULT_MODEL
    if name in embedded.EMBEDDED:
        record = embedded.prepare(embedded.EMBEDDED[name], resolve.embedded_dir(name), check=not args.no_check)
        print(json.dumps(record, indent=2, ensure_ascii=False))
    else:
        print(json.dumps(resolve.resolve_base(name).to_dict(), indent=2))
    return 0


def _info(args) -> int:
    from domainlm.models.resolve import resolve_base

    print(json.dumps(resolve_base(args.name).to_dict(), indent=2))
    return 0


def _generate(args) -> int:
    from domainlm.models.generate import generate_answer
    from domainlm.models.resolve import resolve_base

    base = resolve_base(args.model)
    print(generate_answer(base.path, args.prompt, system=args.system, adapter=args.adapter,
                          max_new_tokens=args.max_new_tokens))
    return 0
