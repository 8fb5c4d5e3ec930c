"""The replay pool: deterministic, every format in both languages, never a gated item, and a format check that
keeps only answers doing what their prompt asked."""

from __future__ import annotations

from collections import Counter

import pytest

from domainlm.data.replay_pool import COMPOSITION, ReplayPrompt, build_pool, follows_format, pool_fingerprint


def test_pool_is_deterministic_and_has_every_format_in_both_languages():
    pool = build_pool()
    assert pool_fingerprint(pool) == pool_fingerprint(build_pool())
    assert pool_fingerprint(pool) != pool_fingerprint(build_pool(seed=1))
    assert Counter((p.kind, p.lang) for p in pool) == Counter(COMPOSITION)
    assert len({p.id for p in pool}) == len(pool)
    # one question feeds one prompt: the kinds do not share questions
    assert len({p.id.split(":", 1)[1] for p in pool}) == len(pool)


def test_pool_never_uses_a_gated_split():
    """General items that gate come from the MMLU and CMMLU test splits: replay reads only val and dev."""
    for prompt in build_pool():
        source = prompt.id.split(":", 1)[1]
        assert source.startswith(("mmlu/val/", "cmmlu/dev/")), source


def _prompt(kind: str, lang: str = "en") -> ReplayPrompt:
    return ReplayPrompt("x", kind, lang, "…", 8)


@pytest.mark.parametrize("kind,lang,answer,ok", [
    ("letter", "en", "B", True), ("letter", "en", "B. rigatoni", True), ("letter", "zh", "C。", True),
    ("letter", "en", "The answer is B", False), ("letter", "en", "E", False), ("letter", "en", "Because A", False),
    ("yesno", "en", "Yes.", True), ("yesno", "en", "maybe, it depends", True),
    ("yesno", "en", "The study suggests yes", False), ("yesno", "zh", "是", True), ("yesno", "zh", "不确定。", True),
    ("yesno", "zh", "这个问题很复杂", False),
    ("json", "en", '{"answer": "A"}', True), ("json", "en", '{"answer": "a"}', True),
    ("json", "en", 'Sure! {"answer": "A"}', False), ("json", "en", '{"answer": "Z"}', False),
    ("json", "en", '["A"]', False),
    ("sentence", "en", "It is called the sagittal crest.", True), ("sentence", "zh", "最早兴盛于宋代。", True),
    ("sentence", "en", "It is a crest. It runs along the skull.", False),
    ("sentence", "en", "It is a crest", False), ("sentence", "en", "", False),
])
def test_follows_format(kind, lang, answer, ok):
    assert follows_format(_prompt(kind, lang), answer) is ok
