"""`domainlm eval CONFIG --model base|<vertical>@<version> [--adapter DIR] [--backend …] [--limit N]`."""

from __future__ import annotations


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "eval", help="score the base model and adapters on benchmark suites; write JSON/Markdown/PNG reports",
        description="Evaluate the base and adapters on the same items (paired), with bootstrap intervals.")
    parser.add_argument("config", nargs="?", help="eval config, e.g. configs/eval/medical.yaml")
    parser.add_argument("overrides", nargs="*", help="config overrides key.path=value (e.g. prompt.style=chat)")
    parser.add_argument("--model", default="base",
                        help="'base' (only the base, or base + --adapter) or <vertical>@<version> from the registry")
    parser.add_argument("--adapter", action="append", default=[], metavar="DIR",
                        help="adapter artifact folder to compare with the base (repeatable); verified before use")
    parser.add_argument("--backend", choices=["hf", "vllm", "openai"], default=None, help="overrides the config")
    parser.add_argument("--endpoint", default=None, help="OpenAI-compatible base URL for --backend openai")
    parser.add_argument("--limit", type=int, default=None, help="items per task (deterministic sample)")
    parser.add_argument("--output", default=None, help="report folder (default $DOMAINLM_HOME/evals/...)")
    parser.add_argument("--no-cache", action="store_true", help="do not read or write the results cache")
    parser.add_argument("--no-attach", action="store_true", help="do not attach the report to the registry entry")
    parser.add_argument("--commit-every", type=int, default=256, help="requests per cached, resumable step")
    parser.add_argument("--list-tasks", action="store_true", help="print the built-in tasks and exit")
    parser.set_defaults(func=_run)


def _run(args) -> int:
    from domainlm.errors import ConfigError

    if args.list_tasks:
        from domainlm.evals.tasks import task_names

        for name, summary in task_names().items():
            print(f"{name:34} {summary}")
        return 0
    if not args.config:
        raise ConfigError("give an eval config, e.g. `domainlm eval configs/eval/medical.yaml --model base`")
    if args.limit is not None and args.limit < 1:
        raise ConfigError("--limit must be at least 1")
    from domainlm.evals.runner import run_eval

    overrides = list(args.overrides) + (["cache.enabled=false"] if args.no_cache else [])
    report = run_eval(args.config, model=args.model, adapters=args.adapter, backend=args.backend,
                      endpoint=args.endpoint, limit=args.limit, output_dir=args.output, overrides=overrides,
                      attach=not args.no_attach, commit_every=args.commit_every)
    print(_table(report))
    print(f"report: {report['files']['json']}")
    print(f"summary: {report['files']['markdown']}")
    if report.get("attached"):
        print(f"attached to registry entry {report['subject']['label']}")
    return 0


def _table(report: dict) -> str:
    labels = [s["label"] for s in report["subjects"]]
    lines = [f"{'task':32} {'metric':12} " + " ".join(f"{label:>14}" for label in labels)]
    for name, task in report["tasks"].items():
        metric = task["primary_metric"]
        scale = 1.0 if metric == "nll" else 100.0
        cells = " ".join(f"{scale * task['scores'][label][metric]['mean']:>14.2f}" for label in labels)
        lines.append(f"{name:32} {metric:12} {cells}")
    summary = report.get("summary")
    if summary:
        def show(value, pct=False):
            return "n/a" if value is None else (f"{100 * value:.1f}%" if pct else f"{value:+.2f}")

        lines.append(f"domain_gain {show(summary['domain_gain'])} points, general_regression "
                     f"{show(summary['general_regression'])} points, "
                     f"nll_reduction {show(summary['nll_reduction'], True)}, "
                     f"significant {summary['significant']} (p={summary['p_value']})")
        ni = summary.get("general_noninferiority")
        if ni:
            lines.append(f"general non-inferiority ({ni['metric']}, margin {ni['margin']:g}, n={ni['n']}): "
                         f"diff {ni['diff']:+.2f}, lower bound {ni['lower']:+.2f} → "
                         f"{'passed' if ni['passed'] else 'failed'}")
    return "\n".join(lines)
