"""`domainlm train CONFIG [key=value …]` and `domainlm export SOURCE [--merge]`."""

from __future__ import annotations

import json


def register_train(subparsers) -> None:
    parser = subparsers.add_parser("train", help="LoRA fine-tune one vertical from a YAML config")
    parser.add_argument("config", help="configs/train/<vertical>.yaml")
    parser.add_argument("overrides", nargs="*", help="key.path=value overrides, e.g. train.max_steps=20")
    parser.add_argument("--nproc", type=int, default=1, help="processes (CPU gloo ranks or devices); default 1")
    parser.add_argument("--accelerate-config", default=None,
                        help="accelerate config for multi-GPU (configs/accelerate/fsdp.yaml, deepspeed_zero2.yaml)")
    parser.add_argument("--no-register", action="store_true", help="do not register the artifact as a candidate")
    parser.set_defaults(func=_train)


def register_export(subparsers) -> None:
    parser = subparsers.add_parser("export", help="copy an adapter, or merge it into its base (--merge)")
    parser.add_argument("source", help="artifact folder, or registry ref: medical (production) / medical@3")
    parser.add_argument("--out", required=True, help="output folder (replaced atomically)")
    parser.add_argument("--merge", action="store_true", help="write base+LoRA merged as a plain HF model")
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    parser.set_defaults(func=_export)


def _train(args) -> int:
    import os
    from pathlib import Path

    from domainlm.errors import ConfigError
    from domainlm.training.config import load_train_config
    from domainlm.training.launch import in_worker, launch

    config = load_train_config(args.config, args.overrides)
    if args.nproc < 1:
        raise ConfigError(f"--nproc must be >= 1, got {args.nproc}")
    if (args.nproc > 1 or args.accelerate_config) and not in_worker():
        worker_args = [args.config, *args.overrides, "--no-register"]
        code = launch(worker_args, args.nproc, args.accelerate_config)
        if code != 0:
            return code
        artifact = config.run_dir() / "adapter"
    else:
        from domainlm.training.loop import train

        artifact = train(config)
        if os.environ.get("RANK", "0") != "0":   # under torchrun / accelerate: the main process reports
            return 0
    result = {"artifact": str(artifact)}
    if not args.no_register:
        from domainlm.registry import Registry

        entry = Registry().register(Path(artifact), vertical=config.vertical)
        result.update(registered=entry.ref, stage=getattr(entry, "stage", "candidate"), path=str(entry.path))
    print(json.dumps(result, indent=2))
    return 0


def _export(args) -> int:
    from pathlib import Path

    from domainlm.registry import resolve_artifact
    from domainlm.artifacts.export import export_adapter

    out = export_adapter(resolve_artifact(args.source), Path(args.out).expanduser(), merge=args.merge,
                         dtype=args.dtype)
    print(json.dumps({"exported": str(out), "merged": args.merge}))
    return 0
