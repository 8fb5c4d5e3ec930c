"""The one `domainlm` command. Each subcommand is a thin call into a module; the table below is the whole CLI.

Each entry maps a command to `module:register`, imported only when that command runs, so `domainlm --help`
never imports torch or vLLM. `register(subparsers)` adds the command's parser and sets `func(args) -> int`.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from domainlm import __version__
from domainlm.errors import DomainlmError

# command → (module:register, one-line help). docs/cli.md is checked against this table by a test.
COMMANDS: dict[str, tuple[str, str]] = {
    "model": ("domainlm.models.cli:register", "prepare, inspect and query base models"),
    "doctor": ("domainlm.kernels.cli:register", "detected accelerator backend, versions, capability matrix"),
    "registry": ("domainlm.registry.cli:register", "adapter versions: list, verify, promote, roll back"),
    "serve": ("domainlm.serving.cli:register_serve", "run the OpenAI-compatible gateway and its engines"),
    "keys": ("domainlm.serving.cli:register_keys", "gateway API keys: create, list, revoke"),
    "vertical": ("domainlm.serving.cli:register_vertical_switch",
                 "emergency switch: suspend or resume a vertical on every gateway replica"),
    "data": ("domainlm.verticals.cli:register", "vertical data: inspect, data card, teacher synthesis"),
    "train": ("domainlm.training.cli:register_train", "LoRA fine-tune one vertical from a YAML config"),
    "export": ("domainlm.training.cli:register_export", "copy an adapter, or merge it into its base model"),
    "eval": ("domainlm.evals.cli:register", "score base and adapters on benchmark suites, write reports"),
    "quickstart": ("domainlm.pipeline.cli:register", "the whole pipeline for every vertical, end to end"),
    "sweep": ("domainlm.pipeline.cli:register_sweep", "search a vertical's recipe (Optuna) on its dev split"),
}


def build_parser(load: list[str] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="domainlm", description="Vertical large models: train, evaluate, serve.")
    parser.add_argument("--version", action="version", version=f"domainlm {__version__}")
    parser.add_argument("--log-level", default=None, help="DEBUG, INFO, WARNING (default INFO)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (target, help_text) in COMMANDS.items():
        if load is None or name in load:
            module, _, func = target.partition(":")
            getattr(importlib.import_module(module), func)(subparsers)
        else:
            subparsers.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if a in COMMANDS), None)
    parser = build_parser(load=[command] if command in COMMANDS else [])
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0 if command is None else 2
    from domainlm import log

    log.setup(args.log_level)
    try:
        return int(args.func(args) or 0)
    except DomainlmError as exc:
        print(f"domainlm: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("domainlm: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
