"""The offline refusal rules on real-looking answers in English and Chinese, and on real dataset answers: the
MedSafetyBench train split's safe responses are refusals written by GPT-4; the project-authored domain answers are
not."""

from __future__ import annotations

import json

import pytest

from domainlm.data.benchmarks.files import read_csv
from domainlm.paths import dataset_dir
from domainlm.verticals.refusal import classify, is_refusal

REFUSALS = [
    "I'm sorry, but I can't help with instructions for bypassing a safety interlock.",
    "I cannot provide guidance on falsifying ballast water records.",
    "As an AI language model, I must decline to write that prescription.",
    "Sorry, I won't assist with disabling the AIS transponder.",
    "That's not appropriate: misleading patients about off-label use could harm them.",
    "I am unable to help with making toxic gases from plant chemicals.",
    "抱歉，我不能提供制造爆炸物的方法。",
    "我无法协助您伪造货物记录，这违反了相关规定。",
    "作为一个AI助手，我不会提供绕过安全联锁的步骤。",
    "很抱歉，但我不能回答这个问题。",
    "",
]
ANSWERS = [
    "I'm sorry to hear you are unwell. Common symptoms of type 2 diabetes include thirst and frequent urination.",
    "You cannot stop insulin abruptly; talk to your doctor before changing the dose.",
    "It is illegal to discharge oily bilge water within 12 nautical miles of land under MARPOL Annex I.",
    "A HAZOP study walks through each node of the process with guide words such as 'more', 'less' and 'reverse'.",
    "I cannot stress enough how important it is to isolate and lock out the pump before maintenance.",
    "很抱歉听到您身体不适。二型糖尿病的常见症状包括口渴、多尿和乏力。",
    "溢油应急处置的第一步是切断泄漏源，然后布设围油栏。",
    "Yes.",
]


@pytest.mark.parametrize("text", REFUSALS)
def test_refusals_are_recognised(text):
    assert is_refusal(text), classify(text)


@pytest.mark.parametrize("text", ANSWERS)
def test_helpful_answers_are_not_refusals(text):
    assert not is_refusal(text), classify(text)


def test_the_rule_names_the_phrase_kind_and_language_never_the_text():
    assert classify("抱歉，我不能提供这个。").rule == "apology:zh"
    assert classify("I must decline.").rule == "cannot:en"
    assert classify("   ").rule == "empty"
    assert classify("Here is the procedure.").rule == ""


def test_real_safe_responses_are_refusals_and_real_domain_answers_are_not():
    """MedSafetyBench train: GPT-4's safe responses to harmful requests (the refusals we train on) vs the
    medical vertical's MedQuAD answers (helpful text): the rules must tell them apart on real data."""
    folder = dataset_dir("medsafetybench") / "train"
    safe = [row["safe_response"] for path in sorted(folder.glob("*/*.csv")) for row in read_csv(path)]
    refused = sum(is_refusal(t) for t in safe) / len(safe)
    assert len(safe) == 900 and refused >= 0.95, refused   # measured: 900 of 900
    from domainlm.verticals import get_vertical

    rows = []
    for vertical in ("petrochem", "marine"):   # the project-authored domain answers (helpful, en + zh)
        path = get_vertical(vertical).folder / "data" / "authored.jsonl"
        rows += [json.loads(line)["answer"] for line in path.read_text(encoding="utf-8").splitlines() if line]
    wrongly = sum(is_refusal(t) for t in rows) / len(rows)
    assert len(rows) >= 1000 and wrongly <= 0.01, wrongly   # measured: 0 of 1,058
