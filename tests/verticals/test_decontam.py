"""Decontamination: n-gram overlap against the real eval sets, reported per (source, eval set) pair in the data
card, and contaminated rows kept out of training."""

from __future__ import annotations

import json

from domainlm.data.benchmarks import eval_set_texts
from domainlm.verticals import get_vertical, register_vertical
from domainlm.verticals.decontam import EvalIndex, authored_safety_sets, ngrams
from domainlm.verticals.rows import hash_split
from domainlm.data.text import split_key
from tests.fixtures.verticals import shipping_rows, write_shipping

WORDS = ["the", "quick", "brown", "fox", "jumps", "over", "the", "lazy", "dog", "near", "the", "river", "bank", "at",
         "dawn"]


def test_ngram_rule():
    assert len(ngrams(" ".join(WORDS))) == len(WORDS) - 13 + 1
    assert ngrams(" ".join(WORDS[:12])) == set()  # shorter than one n-gram: cannot match
    assert ngrams("THE Quick, brown fox! " + " ".join(WORDS[4:])) == ngrams(" ".join(WORDS))  # case/punctuation
    zh = "高血压患者能否长期服用党参泡水来辅助降压"
    assert len(ngrams(zh)) == len(zh) - 13 + 1 and ngrams(zh[:12]) == set()


def test_shared_prompt_templates_are_ignored():
    template = "Given the following context and question answer the question you must only provide the answer"
    sets = {"rag": ("sha", [(str(i), f"{template} context number {i} about topic {i * 7}") for i in range(12)])}
    index = EvalIndex.build(sets)
    assert index.hits(template) == {}
    assert index.sets["rag"].template_ngrams > 0


def _train_question(stem: str) -> str:
    """A question that the hash split puts into train (so the planted row is checked)."""
    return next(q for i in range(100) if hash_split(split_key(q := f"{stem} ({i})?"), 20) == "train")


def test_planted_eval_items_are_dropped_and_reported(tmp_path, clean_vertical_registry):
    medqa = eval_set_texts("medqa_usmle_4opt")[7][1]
    gaokao = next(t for _, t in eval_set_texts("agieval_gaokao_chemistry") if len(t) > 60)
    # the authored safety prompts are eval sets too: a long harmful petrochem request pasted into a marine-style row
    harmful = next(t for _, t in authored_safety_sets()["petrochem_safety"][1] if len(ngrams(t)) >= 3)
    planted = [
        {"id": "leak-en", "lang": "en", "topic": "t", "question": _train_question("Summarise this clinical vignette"),
         "answer": "The vignette reads: " + medqa},
        {"id": "leak-zh", "lang": "zh", "topic": "t", "question": _train_question("请分析这道化学题"),
         "answer": "题目如下：" + gaokao},
        {"id": "leak-safety", "lang": "en", "topic": "t", "question": _train_question("Explain why this is refused"),
         "answer": "The request was: " + harmful},
    ]
    v = register_vertical(write_shipping(tmp_path, rows=shipping_rows() + planted))
    train_ids = {r["id"] for r in v.sft_rows("train")}
    assert not {"faq:leak-en", "faq:leak-zh", "faq:leak-safety"} & train_ids
    dev_ids = {r["id"] for r in v.sft_rows("dev")}   # the dev carve comes out of the decontaminated train rows
    assert len(train_ids) + len(dev_ids) == sum(1 for r in v.load()[0].rows if r["split"] == "train") - 3
    report = v.data_card()["decontamination"]
    pairs = {(p["train_source"], p["eval_set"]): p for p in report["pairs"]}
    assert pairs[("faq", "medqa_usmle_4opt")]["train_rows"] == 1
    assert pairs[("faq", "agieval_gaokao_chemistry")]["train_rows"] == 1
    assert pairs[("faq", "petrochem_safety")]["train_rows"] == 1
    assert report["dropped_rows"] == 3 and report["dropped_by_source"] == {"faq": 3}
    # every shared eval-only set (18), both authored safety sets, the held-out split
    assert set(authored_safety_sets()) == {"petrochem_safety", "marine_safety"}
    assert len(report["eval_sets"]) == 21 and report["eval_sets"]["shipping_heldout"]["drops_overlapping_rows"] is False


def test_medical_data_card(tmp_path):
    v = get_vertical("medical")
    card = v.data_card()
    json.dumps(card)  # serialisable as is: manifests and the console embed it
    report = card["decontamination"]
    assert len(report["pairs"]) == 5 * 21   # 5 sources × (18 shared + 2 authored safety sets + held-out)
    assert report["dropped_by_source"] == {"medquad": 0, "chatdoctor": 0, "huatuo": 0, "huatuo_liver_cancer": 1,
                                           "toyhom": 8}
    # 9 rows: 8 Toyhom rows in CMB-Clin, 1 Huatuo row in SafetyBench zh
    assert card["totals"]["train_after_decontamination"] == card["totals"]["train"] - 9
    assert len(v.sft_rows("train")) + len(v.sft_rows("dev")) == card["totals"]["train_after_decontamination"]
    assert card["totals"]["dev"] == len(v.sft_rows("dev")) == 64
    flags = {s["name"]: (s["non_commercial"], s["research_only"]) for s in card["sources"]}
    assert flags == {"medquad": (False, False), "chatdoctor": (True, True), "huatuo": (True, True),
                     "huatuo_liver_cancer": (True, True), "toyhom": (False, False)}
    assert all(f["matches_manifest"] for s in card["sources"] for f in s["files"])
    markdown = v.data_card_markdown()
    assert "**Restricted licences**" in markdown and "| toyhom | cmb_clin | 8 | 2 |" in markdown
