"""Sources parse the real shared data with every skip counted; splits are deterministic, disjoint and stable;
eval-only data never reaches training; missing data names the folder expected."""

from __future__ import annotations

import hashlib
import json
import re

import pytest

from domainlm.data.benchmarks import TEXTS, eval_set_texts
from domainlm.data.usage import EVAL_ONLY, EVAL_ONLY_SPLITS
from domainlm.errors import DataError
from domainlm.verticals import get_vertical, register_vertical
from domainlm.verticals.rows import hash_split
from domainlm.data.text import detect_lang, split_key
from tests.fixtures.verticals import shipping_rows, write_shipping


def _by_source(vertical: str) -> dict:
    return {x.source.name: x for x in get_vertical(vertical).load()}


def test_medical_sources_account_for_every_upstream_row():
    loaded = _by_source("medical")
    # rows + skips = the item counts in ../shared/data/README.md; every skip has a reason
    expected = {"medquad": 16407, "chatdoctor": 5452, "huatuo": 8658, "huatuo_liver_cancer": 1000, "toyhom": 7644}
    for name, upstream in expected.items():
        x = loaded[name]
        assert len(x.rows) + sum(x.skipped.values()) == upstream, name
    assert loaded["medquad"].skipped == {"duplicate row": 48}
    assert loaded["toyhom"].skipped == {"duplicate row": 396}
    assert all(r["lang"] == "zh" and detect_lang(r["messages"][0]["content"]) == "zh" for r in loaded["toyhom"].rows)
    multi = [r for r in loaded["huatuo_liver_cancer"].rows if len(r["messages"]) > 2]
    assert len(multi) == 708  # 1,000 dialogues, 292 single-turn
    assert all([m["role"] for m in r["messages"]] == ["user", "assistant"] * (len(r["messages"]) // 2) for r in multi)
    medquad = loaded["medquad"].rows[0]["messages"]
    assert medquad[0]["content"] == "What is (are) Adult Acute Lymphoblastic Leukemia ?"
    assert "  " not in medquad[1]["content"]  # XML indentation collapsed


def test_petrochem_keeps_chemlit_upstream_split():
    loaded = _by_source("petrochem")
    assert (len(loaded["chemlit_qa"].rows), loaded["chemlit_qa"].count("eval")) == (843, 0)
    assert (len(loaded["chemlit_qa_test"].rows), loaded["chemlit_qa_test"].count("train")) == (211, 0)
    test_row = loaded["chemlit_qa_test"].rows[0]["messages"]
    assert test_row[0]["content"].startswith("Given the following context and question")
    assert test_row[1]["content"] == "Answer: 220 quenching constants"


@pytest.mark.parametrize("name", ["petrochem", "marine"])
def test_project_authored_sets_are_large_bilingual_and_held_out(name):
    v = get_vertical(name)
    x = _by_source(name)["authored"]
    langs = {lang: sum(1 for r in x.rows if r["lang"] == lang) for lang in ("en", "zh")}
    assert len(x.rows) >= 400 and min(langs.values()) >= 100, langs
    assert sum(x.skipped.values()) == 0, x.skipped
    share = x.count("eval") / len(x.rows)
    assert 0.15 <= share <= 0.25, share
    held = v.sft_rows("eval", sources=["authored"])
    assert len(held) == x.count("eval") and {r["source"] for r in held} == {"authored"}
    card = v.data_card(decontamination=False)
    assert card["licences"]["project_authored"] == ["authored"]


def test_splits_are_pinned_disjoint_and_question_keyed():
    # pinned: changing the split rule would silently move held-out rows into training
    assert hash_split(split_key("Hello, world!"), 20) == "eval"
    assert hash_split(split_key("What is Ekman transport?"), 20) == "train"
    assert int.from_bytes(hashlib.sha256(b"hello world|").digest()[:8], "big") % 100 == 6
    for name in ("medical", "petrochem", "marine"):
        v = get_vertical(name)
        rows = [r for x in v.load() for r in x.rows if x.source.split == "hash"]
        train = {split_key(r["messages"][0]["content"]) for r in rows if r["split"] == "train"}
        held = {split_key(r["messages"][0]["content"]) for r in rows if r["split"] == "eval"}
        assert not train & held, name  # the same question never sits on both sides
        if name == "medical":
            assert 0.19 <= len([r for r in rows if r["split"] == "eval"]) / len(rows) <= 0.22


def test_sft_rows_limit_is_a_deterministic_sample():
    v = get_vertical("medical")
    a, b = v.sft_rows("train", limit=50, seed=1), v.sft_rows("train", limit=50, seed=1)
    c = v.sft_rows("train", limit=50, seed=2)
    assert [r["id"] for r in a] == [r["id"] for r in b] and [r["id"] for r in a] != [r["id"] for r in c]
    everything = {r["id"] for r in v.sft_rows("train")}
    assert {r["id"] for r in a} <= everything
    a[0]["messages"].append({"role": "user", "content": "mutated"})  # callers get copies, never the cache
    assert v.sft_rows("train", limit=50, seed=1)[0]["messages"] != a[0]["messages"]
    zh = v.sft_rows("eval", limit=5, lang="zh")
    assert all(r["lang"] == "zh" and r["messages"][0]["content"] == v.system_prompt("zh") for r in zh)
    with pytest.raises(DataError, match="no source"):
        v.sft_rows("eval", sources=["pubmedqa"])
    with pytest.raises(DataError, match="split must be"):
        v.sft_rows("test")


def test_bad_rows_are_counted_never_silent(tmp_path, clean_vertical_registry):
    rows = shipping_rows()
    extra = ['{"id": "broken", "lang": "en"', json.dumps({"id": "x1", "lang": "fr", "question": "q?", "answer": "a"}),
             json.dumps({"id": "x2", "lang": "en", "question": "", "answer": "a"}),
             json.dumps({"id": "x3", "lang": "zh", "question": "What is a pilot?", "answer": "A local expert."}),
             json.dumps(rows[0]), json.dumps({**rows[1], "id": "sh-zh-new"})]
    v = register_vertical(write_shipping(tmp_path, rows=rows, extra_lines=extra))
    (source,) = v.data_card(decontamination=False)["sources"]
    assert source["rows"] == 40
    assert source["skipped"] == {"invalid JSON": 1, "lang is not en or zh": 1, "missing question": 1,
                                 "text is not in the declared lang": 1, "duplicate id": 1, "duplicate row": 1}
    assert source["skipped_first_at"]["invalid JSON"] == "faq.jsonl:41"


def test_eval_only_data_never_trains(tmp_path, clean_vertical_registry, monkeypatch):
    assert set(TEXTS) == set(EVAL_ONLY) | set(EVAL_ONLY_SPLITS)  # decontamination covers every eval-only set
    for name in TEXTS:
        assert len(eval_set_texts(name)) > 100, name
    # a vertical.yaml cannot name one for training (schema), and a path into one is refused at load time
    v = register_vertical(write_shipping(tmp_path))
    chembench = v.spec.sources[0].model_copy(update={"path": _data_dir("chembench")})
    monkeypatch.setattr(v.spec, "sources", [chembench])
    with pytest.raises(DataError, match="eval-only dataset 'chembench'"):
        v.sft_rows("train")


def _data_dir(name: str) -> str:
    from domainlm.paths import dataset_dir

    return str(dataset_dir(name))


def test_missing_data_names_the_folder_expected(tmp_path, monkeypatch):
    v = get_vertical("medical")
    monkeypatch.setenv("DOMAINLM_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(DataError, match=re.escape(f"domain data folder not found: {tmp_path / 'nowhere'}")):
        v.sft_rows("train")
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("DOMAINLM_DATA", str(tmp_path / "empty"))
    with pytest.raises(DataError, match=re.escape(f"dataset folder not found: {tmp_path / 'empty' / 'medquad'}")):
        v.data_sources()
