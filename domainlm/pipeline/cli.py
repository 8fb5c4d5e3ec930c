"""`domainlm quickstart` (the README's main job) and `domainlm sweep` (a vertical's recipe)."""

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


def register_sweep(subparsers) -> None:
    parser = subparsers.add_parser(
        "sweep", help="hyperparameter search for a vertical's recipe on its dev split (Optuna, resumable)")
    parser.add_argument("config", help="sweep YAML, e.g. configs/sweep/marine.yaml")
    parser.add_argument("overrides", nargs="*", help="key.path=value overrides, e.g. trials=4")
    parser.set_defaults(func=_sweep)


def _sweep(args) -> int:
    import json

    from domainlm.pipeline.sweep import run_sweep

    print(json.dumps(run_sweep(args.config, args.overrides), indent=1))
    return 0
