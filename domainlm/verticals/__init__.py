"""Verticals (petrochem, medical, marine, and any added by folder + YAML): data sources, system prompts, policy,
eval suite and gates, each defined by one `vertical.yaml` and registered by one validated call.

    from domainlm.verticals import get_vertical
    med = get_vertical("medical")
    med.sft_rows("train", limit=100)      # chat rows, system prompt included
    med.policy, med.eval_suite, med.gates, med.data_card()
"""

from __future__ import annotations

from domainlm.verticals.registry import get_vertical, list_verticals, register_vertical
from domainlm.verticals.vertical import Vertical

__all__ = ["Vertical", "get_vertical", "list_verticals", "register_vertical"]
