"""Decontamination: n-gram overlap between training text and the question text of every eval set.

A training row is contaminated by an eval set when they share one n-gram: 13 consecutive Latin words (GPT-3's
rule) or 13 consecutive CJK characters (punctuation and Latin removed; ≈ 7-9 Chinese words). Measured on the
medical data, 8 characters flagged question templates ("的治疗方法是什么") rather than shared items: 177 Huatuo rows
against CMMLU at 8, none at 13. Texts shorter than one n-gram cannot match and are counted in the report.
Eval sets: every eval-only dataset in the shared data (domainlm.data.benchmarks), every built-in vertical's authored
safety prompts (<vertical>/safety/prompts.jsonl: harmful requests and their look-alikes, eval-only), plus the
vertical's own held-out split (its prompts).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from domainlm.data.sources.base import files_sha256
from domainlm.data.text import cjk_chars, latin_words

VERSION = 2  # bump when the n-gram rule changes, so cached reports are recomputed


def ngrams(text: str, word_n: int = 13, char_n: int = 13) -> set[int]:
    """Hashes of the word n-grams of the Latin words and the char n-grams of the CJK characters of `text`."""
    words = latin_words(text)
    chars = cjk_chars(text)
    out = {hash(words[i:i + word_n]) for i in range(len(words) - word_n + 1)}
    out.update(hash(chars[i:i + char_n]) for i in range(len(chars) - char_n + 1))
    return out


@dataclass
class EvalSetIndex:
    name: str
    sha256: str
    items: int
    items_without_ngrams: int
    owner: dict[int, int]  # n-gram hash → index of the first item holding it
    template_ngrams: int   # n-grams ignored because too many items share them


def index_set(name: str, sha: str, items: list[tuple[str, str]], word_n: int = 13, char_n: int = 13,
              template_items: int = 10) -> EvalSetIndex:
    """n-grams of one eval set. An n-gram found in more than `template_items` items is the set's prompt template
    ("Given the following context and question, answer the question ...") rather than content, and is ignored."""
    owner: dict[int, int] = {}
    seen: Counter = Counter()
    empty = 0
    for index, (_, text) in enumerate(items):
        grams = ngrams(text, word_n, char_n)
        empty += not grams
        seen.update(grams)
        for gram in grams:
            owner.setdefault(gram, index)
    templates = [g for g, n in seen.items() if n > template_items]
    for gram in templates:
        del owner[gram]
    return EvalSetIndex(name, sha, len(items), empty, owner, len(templates))


class EvalIndex:
    """Several eval sets' n-grams; `hits(text)` says which sets (and items) a text overlaps.

    `unions` are supersets of all n-grams, checked first: most training rows touch no eval set, and one set
    lookup per n-gram settles them. The shared sets' union is built once per process and reused by every vertical.
    """

    def __init__(self, sets: dict[str, EvalSetIndex], word_n: int = 13, char_n: int = 13,
                 unions: list[set[int]] | None = None):
        self.word_n, self.char_n = word_n, char_n
        self.sets = sets
        self.unions = unions if unions is not None else [set().union(*(s.owner for s in sets.values()))]

    @classmethod
    def build(cls, sets: dict[str, tuple[str, list[tuple[str, str]]]], word_n: int = 13, char_n: int = 13,
              template_items: int = 10) -> EvalIndex:
        return cls({name: index_set(name, sha, items, word_n, char_n, template_items)
                    for name, (sha, items) in sets.items()}, word_n, char_n)

    def hits(self, text: str) -> dict[str, set[int]]:
        """{eval set: indexes of the items sharing an n-gram with text}; empty when the text is clean."""
        grams = ngrams(text, self.word_n, self.char_n)
        if all(union.isdisjoint(grams) for union in self.unions):
            return {}
        found: dict[str, set[int]] = {}
        for name, index in self.sets.items():
            items = {index.owner[g] for g in grams if g in index.owner}
            if items:
                found[name] = items
        return found


def row_text(row: dict) -> str:
    return "\n".join(m["content"] for m in row["messages"] if m["role"] != "system")


def prompt_text(row: dict) -> str:
    return "\n".join(m["content"] for m in row["messages"] if m["role"] == "user")


def decontaminate(train: dict[str, list[dict]], index: EvalIndex, drop_sets: set[str]) -> tuple[dict, list[str]]:
    """Check every training row against every eval set → (report, ids of rows to drop).

    report["pairs"] has one entry per (training source, eval set): rows of the source that overlap the set and
    distinct eval items they overlap. A row is dropped when it overlaps a set in `drop_sets`.
    """
    pairs = {(s, e): [0, set()] for s in train for e in index.sets}
    dropped: list[str] = []
    for source, rows in train.items():
        for row in rows:
            found = index.hits(row_text(row))
            if drop_sets.intersection(found):
                dropped.append(row["id"])
            for name, items in found.items():
                pairs[(source, name)][0] += 1
                pairs[(source, name)][1].update(items)
    report = {
        "method": f"{index.word_n}-word / {index.char_n}-CJK-char n-gram overlap with eval question text",
        "version": VERSION,
        "train_rows_checked": sum(len(rows) for rows in train.values()),
        "dropped_rows": len(dropped),
        "dropped_by_source": {s: sum(1 for i in dropped if i.startswith(f"{s}:")) for s in train},
        "eval_sets": {name: {"sha256": s.sha256, "items": s.items, "items_without_ngrams": s.items_without_ngrams,
                             "template_ngrams_ignored": s.template_ngrams,
                             "drops_overlapping_rows": name in drop_sets} for name, s in index.sets.items()},
        "pairs": [{"train_source": s, "eval_set": e, "train_rows": n, "eval_items": len(items)}
                  for (s, e), (n, items) in pairs.items()],
    }
    return report, dropped


_SHARED: dict[tuple, dict] = {}


def authored_safety_sets() -> dict[str, tuple[str, list[tuple[str, str]]]]:
    """{<vertical>_safety: (sha256, [(prompt id, prompt)])} for every built-in vertical that ships authored safety
    prompts. Every vertical is checked against all of them: a refinery's training rows must not hold the marine
    suite's prompts either, since any adapter may be scored on any safety suite."""
    builtin = Path(__file__).parent
    sets = {}
    for path in sorted(builtin.glob("*/safety/prompts.jsonl")):
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        sets[f"{path.parent.parent.name}_safety"] = (files_sha256([path], path.parent),
                                                     [(row["id"], row["prompt"]) for row in rows])
    return sets


def shared_eval_sets() -> dict[str, tuple[str, list[tuple[str, str]]]]:
    """{eval set: (sha256, [(item id, question text)])} for every eval-only set in the shared data and every
    authored safety set shipped with the built-in verticals."""
    from domainlm.data.benchmarks import TEXTS, eval_set_sha256, eval_set_texts
    from domainlm.paths import data_root

    key = (str(data_root()),)
    if key not in _SHARED:
        _SHARED[key] = {**{name: (eval_set_sha256(name), eval_set_texts(name)) for name in sorted(TEXTS)},
                        **authored_safety_sets()}
    return _SHARED[key]


_SHARED_INDEX: dict[tuple, EvalIndex] = {}


def vertical_index(heldout_name: str, heldout: tuple[str, list[tuple[str, str]]], word_n: int = 13,
                   char_n: int = 13) -> EvalIndex:
    """Every shared eval set (indexed once per process) + one vertical's held-out prompts."""
    shared = shared_eval_sets()
    key = (word_n, char_n, tuple((name, sha) for name, (sha, _) in shared.items()))
    if key not in _SHARED_INDEX:
        _SHARED_INDEX[key] = EvalIndex.build(shared, word_n, char_n)
    base = _SHARED_INDEX[key]
    held = index_set(heldout_name, heldout[0], heldout[1], word_n, char_n)
    return EvalIndex({**base.sets, heldout_name: held}, word_n, char_n, unions=base.unions + [set(held.owner)])
