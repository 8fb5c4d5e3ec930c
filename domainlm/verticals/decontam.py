"""Decontamination: n-gram overlap between training text and the question text of every eval set.

A training row is contaminated by an eval set when they share one n-gram: 13 consecutive Latin words (GPT-3's
rule) or 13 consecutive CJK characters (punctuation and Latin removed; ≈ 7-9 Chinese words). Measured on the
medical data, 8 characters flagged question templates ("的治疗方法是什么") rather than shared items: 177 Huatuo rows
against CMMLU at 8, none at 13. Texts shorter than one n-gram cannot match and are counted in the report. Eval sets: every eval-only dataset in the shared data
(domainlm.data.sources.evalsets) plus the vertical's own held-out split (its prompts).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from domainlm.verticals.text import cjk_chars, latin_words

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


class EvalIndex:
    """All eval sets' n-grams; `hits(text)` says which sets (and items) a text overlaps.

    An n-gram found in more than `template_items` items of one set is that set's prompt template ("Given the
    following context and question, answer the question ...") rather than an item's content, and is ignored.
    """

    def __init__(self, sets: dict[str, tuple[str, list[tuple[str, str]]]], word_n: int = 13, char_n: int = 13,
                 template_items: int = 10):
        self.word_n, self.char_n = word_n, char_n
        self.sets: dict[str, EvalSetIndex] = {}
        self.union: set[int] = set()
        for name, (sha, items) in sets.items():
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
            self.sets[name] = EvalSetIndex(name, sha, len(items), empty, owner, len(templates))
            self.union.update(owner)

    def hits(self, text: str) -> dict[str, set[int]]:
        """{eval set: indexes of the items sharing an n-gram with text}; empty when the text is clean."""
        grams = ngrams(text, self.word_n, self.char_n)
        if self.union.isdisjoint(grams):
            return {}
        shared = grams & self.union
        found: dict[str, set[int]] = {}
        for name, index in self.sets.items():
            items = {index.owner[g] for g in shared if g in index.owner}
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


def shared_eval_sets() -> dict[str, tuple[str, list[tuple[str, str]]]]:
    """{eval-only dataset: (sha256, [(item id, question text)])} for every eval set in the shared data."""
    from domainlm.data.sources.evalsets import READERS, eval_set_sha256, eval_set_texts
    from domainlm.paths import data_root

    key = (str(data_root()),)
    if key not in _SHARED:
        _SHARED[key] = {name: (eval_set_sha256(name), eval_set_texts(name)) for name in sorted(READERS)}
    return _SHARED[key]
