"""ChemLit-QA's CSV splits (chunk, Question, Answer, ID): rebuilt in the prompt layout of its fine-tune JSONL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from domainlm.data.sources import readers
from domainlm.data.sources.base import Record, Skip, turns
from domainlm.data.text import clean

# The layout of ChemLit-QA's finetune_datasets/gpt_*.jsonl user turns and answers, so both splits read alike.
PROMPT = ("Given the following context and question, answer the question. You must only provide the answer.\n"
          "Context:\n{context}\nQuestion:\n{question}")


def chemlit_csv(path: Path) -> Iterator[Record | Skip]:
    for where, obj in readers.csv_dicts(path):
        if isinstance(obj, Skip):
            yield obj
            continue
        context, question, answer = (clean(obj.get(k) or "") for k in ("chunk", "Question", "Answer"))
        if not context or not question:
            yield Skip("empty context or question", where)
        elif not answer:
            yield Skip("empty answer", where)
        else:
            row_id = f"{path.name}:ID{obj['ID']}" if obj.get("ID") else where
            yield Record(row_id, turns(PROMPT.format(context=context, question=question), f"Answer: {answer}"), "en")
