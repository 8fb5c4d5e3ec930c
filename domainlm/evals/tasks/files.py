"""User tasks without code: a small YAML that points at a JSONL/CSV/JSON file and says which columns mean what."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from domainlm.config.loader import Strict, load_config
from domainlm.errors import DataError

from domainlm.evals.tasks.base import LETTERS, Item, Task
from domainlm.evals.tasks.readers import read_rows


class FieldMap(Strict):
    id: str | None = None                   # column with a stable item id (default: row number)
    choices: str | list[str] | None = None  # one column holding a list, or several columns (e.g. [A, B, C, D])
    answer: str | None = None               # multiple_choice gold: index (0-based), letter, or the option text
    reference: str | None = None            # generate / nll / judge: the reference answer column
    messages: str | None = None             # chat-native rows: a column holding [{role, content}, ...]


class TaskFile(Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")  # task name in reports
    kind: Literal["multiple_choice", "generate", "nll", "judge"]
    data: str                                # data file, relative to this YAML (.jsonl, .json list, .csv)
    fewshot_data: str | None = None          # optional file of solved examples for few-shot prompts
    fields: FieldMap = Field(default_factory=FieldMap)
    template: str = "{question}"             # str.format over the row's columns, plus {options}
    choice_style: Literal["texts", "letters"] = "texts"  # continuation scored: " <option text>" or " A"
    primary: str | None = None               # metric used by summaries (default by kind)
    metrics: list[str] | None = None         # per-item metrics to report (default by kind)
    labels: list[str] = Field(default_factory=list)      # generate: extract one of these labels from the answer
    tolerance: float = Field(0.05, ge=0)     # generate with primary numeric_acc: relative tolerance
    max_new_tokens: int = Field(64, ge=1)
    stop: list[str] = Field(default_factory=lambda: ["\n\n"])
    language: str = "en"
    description: str = ""

    @model_validator(mode="after")
    def _fields_for_kind(self):
        if self.kind == "multiple_choice" and (self.fields.choices is None or self.fields.answer is None):
            raise ValueError("multiple_choice tasks need fields.choices and fields.answer")
        if self.kind in ("generate", "judge") and self.fields.reference is None:
            raise ValueError(f"{self.kind} tasks need fields.reference")
        if self.kind == "nll" and self.fields.reference is None and self.fields.messages is None:
            raise ValueError("nll tasks need fields.reference (with a template) or fields.messages")
        return self


def _gold(value, choices: tuple[str, ...], where: str) -> int:
    if isinstance(value, bool):
        raise DataError(f"{where}: answer must be an index, a letter or an option text")
    if isinstance(value, str) and value in choices:  # option text first: an option may itself be "2"
        index = choices.index(value)
    elif isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit()):
        index = int(value)
    elif isinstance(value, str) and len(value.strip().strip("()")) == 1:
        index = LETTERS.find(value.strip().strip("()").upper())
    else:
        index = -1
    if not 0 <= index < len(choices):
        raise DataError(f"{where}: answer {value!r} does not name one of the {len(choices)} options")
    return index


def _item(spec: TaskFile, row: dict, number: int, origin: str) -> Item:
    where = f"{origin}: row {number + 1}"
    f = spec.fields
    missing = [c for c in ([f.choices] if isinstance(f.choices, str) else f.choices or [])
               + [f.answer, f.reference, f.messages, f.id] if c and c not in row]
    if missing:
        raise DataError(f"{where}: missing column(s) {', '.join(missing)}")
    item_id = str(row[f.id]) if f.id else str(number)
    if f.messages:
        messages = row[f.messages]
        if not isinstance(messages, list) or not messages or messages[-1].get("role") != "assistant":
            raise DataError(f"{where}: '{f.messages}' must be a list of messages ending with the assistant answer")
        return Item(id=item_id, fields=row, messages=tuple(messages[:-1]), reference=messages[-1]["content"])
    choices: tuple[str, ...] = ()
    gold = None
    if f.choices is not None:
        raw = row[f.choices] if isinstance(f.choices, str) else [row[c] for c in f.choices]
        if not isinstance(raw, list) or len(raw) < 2:
            raise DataError(f"{where}: choices must be a list of at least two options")
        choices = tuple(str(c) for c in raw)
        gold = _gold(row[f.answer], choices, where)
    reference = str(row[f.reference]) if f.reference else None
    return Item(id=item_id, fields=row, choices=choices, gold=gold, reference=reference)


def load_task_file(path: str | Path) -> Task:
    """Validate the YAML (errors name file:line:key) and turn its data file into a Task."""
    path = Path(path)
    spec = load_config(path, TaskFile)
    data = (path.parent / spec.data).resolve()
    rows = read_rows(data)
    items = [_item(spec, row, n, str(data)) for n, row in enumerate(rows)]
    if not items:
        raise DataError(f"{data}: no rows")
    shots = []
    if spec.fewshot_data:
        shot_file = (path.parent / spec.fewshot_data).resolve()
        shots = [_item(spec, row, n, str(shot_file)) for n, row in enumerate(read_rows(shot_file))]
    task = Task(spec.name, spec.kind, items, template=spec.template, choice_style=spec.choice_style,
                fewshot_pool=shots, metrics=tuple(spec.metrics or ()), primary=spec.primary or "",
                max_new_tokens=spec.max_new_tokens, stop=tuple(spec.stop), labels=tuple(spec.labels),
                tolerance=spec.tolerance, language=spec.language, sources=(str(data),),
                description=spec.description or f"user task from {path.name}")
    if not spec.fields.messages:  # chat-native rows are sent as their messages; the template is not used
        try:
            task.template.format(**{**{k: "" for k in items[0].fields}, "options": ""})
        except (KeyError, IndexError) as exc:
            raise DataError(f"{path}: template refers to {exc} which is not a column of {data.name}") from None
    return task
