"""Verticals (petrochem, medical, marine, and any added by folder + YAML): data sources, system prompts, policy,
eval suite and gates, each defined by one `vertical.yaml` and registered by one validated call.

    from domainlm.verticals import get_vertical
    med = get_vertical("medical")
    med.sft_rows("train", limit=100)      # chat rows, system prompt included
    med.policy, med.eval_suite, med.gates, med.data_card()

Names are imported lazily so `domainlm.verticals.text` (used by the data parsers) stays import-cycle free.
"""

from __future__ import annotations

__all__ = ["Vertical", "get_vertical", "list_verticals", "register_vertical"]


def __getattr__(name: str):
    if name in ("get_vertical", "list_verticals", "register_vertical"):
        from domainlm.verticals import registry

        return getattr(registry, name)
    if name == "Vertical":
        from domainlm.verticals.vertical import Vertical

        return Vertical
    raise AttributeError(f"module 'domainlm.verticals' has no attribute {name!r}")
