"""Replay answers from the real base model through vLLM's offline engine, cached per base; a training mixture that
gives each part its weight's share of the rows and puts every part on record."""

from __future__ import annotations

import json
import time

import pytest

from domainlm.data import dataset
from domainlm.data.replay_pool import build_pool, follows_format
from domainlm.errors import DataError
from domainlm.training.config import DataConfig


@pytest.fixture(scope="module")
def tokenizer(base_model):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(base_model.path)


@pytest.mark.slow
def test_replay_answers_come_from_the_base_once_and_follow_their_format(isolated_home, base_model):
    from domainlm.training.replay import ensure_replay

    folder = ensure_replay(base_model)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["base"] == base_model.weights_sha256 and manifest["prompts"] == len(build_pool())
    rows = [json.loads(line) for line in (folder / "answers.jsonl").read_text().split("\n") if line]
    assert len(rows) == manifest["kept"] >= len(build_pool()) // 4
    pool = {p.id: p for p in build_pool()}
    for row in rows:   # every replayed answer is the base's and does what its prompt asked
        prompt = pool[row["id"]]
        assert row["messages"][0]["content"] == prompt.prompt
        assert follows_format(prompt, row["messages"][1]["content"])
    kinds = {k.split("/")[0] for k, v in manifest["per_kind"].items() if v["kept"]}
    assert {"letter", "yesno"} <= kinds, manifest["per_kind"]

    stamp = (folder / "answers.jsonl").stat().st_mtime_ns
    started = time.monotonic()
    assert ensure_replay(base_model) == folder   # cached: no engine start
    assert time.monotonic() - started < 5 and (folder / "answers.jsonl").stat().st_mtime_ns == stamp


@pytest.mark.slow
def test_a_mixture_gives_each_part_its_share_and_records_it(isolated_home, base_model, tokenizer):
    from domainlm.training.replay import ReplayRows
    from domainlm.verticals.sft import VerticalRows

    data = DataConfig(vertical="medical", max_train_rows=100, max_eval_rows=4, max_length=512, truncate=True,
                      on_error="skip",
                      mix=[{"source": "vertical", "weight": 0.7}, {"source": "replay", "weight": 0.2},
                           {"source": "safety", "weight": 0.1}])
    built = dataset.build(data, tokenizer, 42, VerticalRows("medical", None, 42), ReplayRows(base_model, 42))
    assert built.stats["mix"] == {"vertical": {"weight": 0.7, "wanted": 70, "rows": 70},
                                  "replay": {"weight": 0.2, "wanted": 20, "rows": 20},
                                  "safety": {"weight": 0.1, "wanted": 10, "rows": 10}}
    assert 95 <= built.stats["train_rows"] <= 100   # a long medical row or two may not fit 512 tokens (skipped)
    records = {r["name"]: r for r in built.sources}
    assert records["replay"]["rows"] == 20 and records["replay"]["replay"]["base"] == base_model.weights_sha256
    assert records["medsafety"]["rows"] == 10 and records["medsafety"]["research_only"]
    assert sum(records[n]["rows"] for n in ("medquad", "chatdoctor", "huatuo", "huatuo_liver_cancer", "toyhom")
               if n in records) == built.stats["train_rows"] - 30   # replay and safety rows are short: all encode


def test_mixture_errors_name_the_part():
    with pytest.raises(ValueError, match="set max_train_rows"):
        DataConfig(vertical="medical", mix=[{"source": "vertical", "weight": 1}])
    with pytest.raises(ValueError, match="need data.vertical"):
        DataConfig(files=[{"path": "x.jsonl"}], max_train_rows=10,
                   mix=[{"source": "files", "weight": 1}, {"source": "safety", "weight": 1}])
    with pytest.raises(ValueError, match="listed twice"):
        DataConfig(vertical="medical", max_train_rows=10,
                   mix=[{"source": "vertical", "weight": 1}, {"source": "vertical", "weight": 2}])


def test_a_vertical_without_safety_data_says_so():
    from domainlm.verticals import get_vertical

    with pytest.raises(DataError, match="marine' declares no safety_sources"):
        get_vertical("marine").safety_rows(limit=4)


def test_mix_counts_sum_to_the_total():
    from domainlm.training.config import MixPart

    parts = [MixPart(source="vertical", weight=0.7), MixPart(source="replay", weight=0.2),
             MixPart(source="safety", weight=0.1)]
    for total in (1, 7, 64, 101, 640):
        counts = dataset.mix_counts(parts, total)
        assert sum(counts.values()) == total and counts["vertical"] >= counts["replay"] >= counts["safety"]
