"""`format:` name in a vertical YAML → parser, and the one entry point that picks a parser by that name. A new
format is one function here (see docs/verticals.md)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from domainlm.data.sources import chemistry, generic, medical
from domainlm.data.sources.base import Record, Skip
from domainlm.errors import DataError

FORMATS = {
    "qa_jsonl": generic.qa_jsonl,                       # {"id","lang","topic","question","answer"}
    "chat_jsonl": generic.chat_jsonl,                   # {"messages": [...]} (ChemLit-QA finetune sets)
    "alpaca_json": generic.alpaca_json,                 # JSON array of {instruction,input,output}
    "alpaca_jsonl": generic.alpaca_jsonl,               # JSONL of {instruction,input,output} (Huatuo)
    "role_prompt_alpaca_json": generic.role_prompt_alpaca_json,  # ChatDoctor: instruction is a role prompt
    "medquad_jsonl": medical.medquad_jsonl,             # MedQuAD shards
    "huatuo_dialogue_json": medical.huatuo_dialogue_json,  # Huatuo liver_cancer multi-turn
    "toyhom_csv": medical.toyhom_csv,                   # Toyhom CSV, GB18030
    "medsafety_csv": medical.medsafety_csv,             # MedSafetyBench demonstrations (request, safe response)
    "chemlit_csv": chemistry.chemlit_csv,               # ChemLit-QA CSV splits (chunk, Question, Answer)
}


def parse_file(fmt: str, path: Path) -> Iterator[Record | Skip]:
    if fmt not in FORMATS:
        raise DataError(f"unknown data format '{fmt}' for {path}: use one of {sorted(FORMATS)}")
    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    return FORMATS[fmt](path)
