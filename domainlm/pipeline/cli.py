"""`domainlm quickstart`: the README's main job."""

from __future__ import annotations


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "quickstart", help="prepare → train → eval → register → promote → serve → ask, for every vertical")
    parser.add_argument("--config", default="configs/pipeline/quickstart.yaml", help="pipeline YAML")
    parser.add_argument("--smoke", action="store_true", help="the reduced run CI uses (tiny training and eval)")
    parser.add_argument("--only", default=None, metavar="STAGE",
                        help="run up to this stage (prepare, train, register, eval, promote, serve, report); "
                             "earlier completed stages are verified and skipped")
    parser.add_argument("overrides", nargs="*", help="key.path=value overrides, e.g. eval.limit=50")
    parser.set_defaults(func=_run)


def _run(args) -> int:
    from domainlm.pipeline.quickstart import run_quickstart

    run_quickstart(args.config, args.overrides, smoke=args.smoke, only=args.only)
    return 0
