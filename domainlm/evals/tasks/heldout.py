"""Held-out splits of each vertical's own SFT data: answer NLL (the small-model signal) and generation overlap.

Rows come from `get_vertical(v).sft_rows(split="eval")`: {"messages": [...], "source", "id"}; the last message is
the reference assistant answer, everything before it is the prompt (rendered with the chat template).
"""

from __future__ import annotations

from pathlib import Path

from domainlm.errors import ConfigError, DataError

from domainlm.evals.tasks.base import Item, Task
from domainlm.evals.tasks.readers import read_rows
from domainlm.evals.tasks.registry import register_task


def heldout_rows(vertical: str, rows_file: str | None = None, sources: list[str] | None = None,
                 split: str = "eval") -> list[dict]:
    """The vertical's eval split (or its dev carve; system prompt included, as served), or rows from a JSONL file."""
    if rows_file:
        return read_rows(Path(rows_file))
    try:
        from domainlm.verticals import get_vertical
    except ImportError as exc:
        raise ConfigError(f"held-out tasks need domainlm.verticals ({exc}); or pass params: {{rows_file: FILE.jsonl}}"
                          ) from None
    return list(get_vertical(vertical).sft_rows(split=split, sources=sources))


def items_from_messages(rows: list[dict], origin: str) -> list[Item]:
    items = []
    for number, row in enumerate(rows):
        messages = row.get("messages")
        if not messages or messages[-1].get("role") != "assistant" or len(messages) < 2:
            raise DataError(f"{origin}: row {number + 1}: 'messages' must end with an assistant answer")
        items.append(Item(id=str(row.get("id", number)), messages=tuple(messages[:-1]),
                          reference=messages[-1]["content"], fields={"source": row.get("source", "")}))
    return items


def heldout_task(name: str, vertical: str, kind: str, rows_file: str | None, max_new_tokens: int,
                 sources: list[str] | None, split: str = "eval") -> Task:
    rows = heldout_rows(vertical, rows_file, sources, split)
    items = items_from_messages(rows, rows_file or f"vertical '{vertical}' eval split")
    sources = tuple(sorted({str(r.get("source")) for r in rows if r.get("source")}))
    if kind == "nll":
        return Task(name, "nll", items, sources=sources, description=f"{vertical} held-out answers, per-token NLL")
    return Task(name, "generate", items, primary="rouge_l", max_new_tokens=max_new_tokens, sources=sources,
                description=f"{vertical} held-out answers, greedy generation vs reference")


def _register(name: str, vertical: str, kind: str, default_sources: list[str] | None) -> None:
    what = "mean per-token answer NLL (lower is better)" if kind == "nll" else "ROUGE-L / token F1 of greedy answers"
    picked = f" ({', '.join(default_sources)} rows)" if default_sources else ""
    register_task(name, f"{vertical} held-out SFT split{picked}: {what}")(
        lambda ctx, rows_file=None, max_new_tokens=64, sources=default_sources:
        heldout_task(name, vertical, kind, rows_file, max_new_tokens, sources))


# The medical split is MedQuAD's (English NIH answers); petrochem's is the project-authored QA (ChemLit-QA's test
# chat file carries no answers); marine has only project-authored rows.
_register("medquad_heldout_nll", "medical", "nll", ["medquad"])
_register("petrochem_heldout", "petrochem", "nll", ["authored"])
_register("marine_heldout", "marine", "nll", None)
_register("medquad_heldout_gen", "medical", "generate", ["medquad"])
_register("petrochem_heldout_gen", "petrochem", "generate", ["authored"])
_register("marine_heldout_gen", "marine", "generate", None)


@register_task("dev_nll", "the suite vertical's dev carve (10% of its train split, ≤ 64 rows, never trained on): "
                          "answer NLL — what `domainlm sweep` scores trials on, never a gating item")
def dev_nll(ctx, rows_file=None):
    return heldout_task("dev_nll", ctx.vertical, "nll", rows_file, 64, None, split="dev")
