"""Small text helpers for the data parsers, policy, splits, dedup and decontamination: CJK detection, cleaning."""

from __future__ import annotations

import re

# CJK Unified Ideographs + Extension A + compatibility ideographs: enough to tell Chinese from English text.
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_LATIN_WORD = re.compile(r"[a-z0-9]+")
_LATIN_LETTER = re.compile(r"[A-Za-z]")
_SPACES = re.compile(r"[ \t\u3000]+")
_BLANK_LINES = re.compile(r"\n\s*\n\s*(\n\s*)+")

# A text is Chinese when CJK characters are at least this share of (CJK chars + Latin letters). One CJK char
# carries about a word, an English word about five letters, so 0.15 already means "mostly Chinese words".
ZH_THRESHOLD = 0.15


def cjk_ratio(text: str) -> float:
    cjk = len(_CJK.findall(text))
    latin = len(_LATIN_LETTER.findall(text))
    return cjk / (cjk + latin) if cjk + latin else 0.0


def detect_lang(text: str) -> str:
    """'zh' or 'en' by the share of CJK characters (no model: this runs on every gateway request)."""
    return "zh" if cjk_ratio(text) >= ZH_THRESHOLD else "en"


def clean(text: str) -> str:
    """Collapse runs of spaces (MedQuAD's XML indentation) and of blank lines; strip each line's ends."""
    text = _SPACES.sub(" ", text.replace("\r\n", "\n").replace("\r", "\n"))
    text = "\n".join(line.strip() for line in text.split("\n"))
    return _BLANK_LINES.sub("\n\n", text).strip()


def split_key(text: str) -> str:
    """The normalised form two rows share when they ask the same thing (case, spacing, punctuation ignored)."""
    return " ".join(_LATIN_WORD.findall(text.lower())) + "|" + "".join(_CJK.findall(text))


def latin_words(text: str) -> tuple[str, ...]:
    return tuple(_LATIN_WORD.findall(text.lower()))


def cjk_chars(text: str) -> str:
    return "".join(_CJK.findall(text))


_UNIT = re.compile(r"[a-z0-9]+|[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


def units(text: str) -> list[str]:
    """Words of Latin text and single CJK characters, in order (the shingle units of near-duplicate search)."""
    return _UNIT.findall(text.lower())
