"""`domainlm doctor`: the backend report (kernels/doctor.py) plus how serving uses that backend."""

from __future__ import annotations

import json


def register(subparsers) -> None:
    parser = subparsers.add_parser("doctor", help="detected accelerator backend, versions, capability matrix")
    parser.add_argument("--json", action="store_true", help="print the full report as JSON")
    parser.set_defaults(func=_doctor)


def _doctor(args) -> int:
    from domainlm.kernels import doctor
    from domainlm.kernels.backends import select_backend
    from domainlm.serving.engines.lora_mode import lora_serving_mode

    data = doctor.report()
    data["selected"]["lora_serving"] = dict(lora_serving_mode(select_backend())._asdict())
    print(json.dumps(data, indent=2, ensure_ascii=False, default=str) if args.json else doctor.format_report(data))
    return 0
