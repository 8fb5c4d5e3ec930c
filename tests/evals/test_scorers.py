"""Scoring functions: lm-eval's MC definitions, SQuAD-style text metrics, SciBench numbers, PubMedQA labels."""

from __future__ import annotations

import pytest

from domainlm.evals import scorers


def test_multiple_choice_matches_lm_eval_definitions():
    # option 0 has the highest total log-prob; option 2 the best per character; option 1 the best per byte
    lls = [-10.0, -12.0, -13.0]
    choices = ["ab", "ééé", "abcdefghijklm"]   # chars 2, 3, 13; bytes 2, 6, 13
    out = scorers.multiple_choice(lls, choices, gold=2)
    assert out["pred"] == 0 and out["acc"] == 0.0
    assert out["acc_norm"] == 1.0                # -13/13 = -1.0 beats -10/2 and -12/3
    by_bytes = scorers.multiple_choice([-10.0, -5.0, -13.0], ["ab", "ééé", "abcdefghijklm"], gold=1)
    assert by_bytes["acc_bytes"] == 1.0           # -5/6 beats -1.0 and -5
    assert by_bytes["acc_norm"] == 0.0            # per character -5/3 loses to -13/13


def test_text_metrics():
    assert scorers.exact_match("The Aorta.", "aorta") == 1.0
    assert scorers.exact_match("aorta artery", "aorta") == 0.0
    assert scorers.token_f1("the left ventricle", "left ventricle wall") == pytest.approx(0.8)
    assert scorers.token_f1("", "x") == 0.0
    # articles are dropped: [cat sat on mat] vs [cat is on mat], LCS 3 of 4
    assert scorers.rouge_l("a cat sat on the mat", "the cat is on the mat") == pytest.approx(3 / 4)
    assert scorers.token_f1("肺炎是感染", "肺炎是一种感染") == pytest.approx(2 * 5 / 5 * 5 / 7 / (1 + 5 / 7))


@pytest.mark.parametrize("text,value", [("50.7 atm", 50.7), ("-3.5e2 J", -350.0), ("1,234.5", 1234.5),
                                        ("1.2 × 10^{-3} M", 1.2e-3), (r"\( 2.1 \times 10^{4} \)", 2.1e4),
                                        ("−0.25", -0.25), ("no number", None)])
def test_parse_number(text, value):
    got = scorers.parse_number(text)
    assert got == pytest.approx(value) if value is not None else got is None


def test_numeric_tolerance_is_relative_five_percent():
    assert scorers.numeric_match("52.0", "50.7") == 1.0     # 2.6% off
    assert scorers.numeric_match("54.0", "50.7") == 0.0     # 6.5% off
    assert scorers.numeric_match("0.01", "0") == 1.0        # a zero reference uses an absolute tolerance
    assert scorers.numeric_match("about that", "50.7") == 0.0


def test_label_extraction_takes_the_first_label_word():
    labels = ("yes", "no", "maybe")
    assert scorers.extract_label("Maybe; the data say no.", labels) == "maybe"
    assert scorers.extract_label("Not known", labels) is None   # "not" is not "no"
    out = scorers.generation("No.", "no", ("label_acc", "exact_match"), labels)
    assert out["label_acc"] == 1.0 and out["label"] == "no"
