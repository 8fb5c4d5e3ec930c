"""Data → tokens: row layouts, bad rows (file:line or skipped and counted), eval-only refusal, assistant-only loss,
deterministic order, packing layout."""

from __future__ import annotations

import json

import numpy as np
import pytest

from domainlm.data import dataset
from domainlm.data.batching import RowOrder, micro_batch_rows, pack, pad, step_rows
from domainlm.data.encode import IGNORE, ChatEncoder
from domainlm.data.formats import BadRow, to_messages
from domainlm.errors import DataError
from domainlm.paths import data_root
from domainlm.training.config import DataConfig


@pytest.fixture(scope="module")
def tokenizer(base_model):
    from domainlm.training.model import load_tokenizer

    return load_tokenizer(base_model.path)


def write_jsonl(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


GOOD = {"messages": [{"role": "user", "content": "What is LPG?"}, {"role": "assistant", "content": "Propane."}]}


def test_three_layouts_give_the_same_conversation():
    expected = GOOD["messages"]
    assert to_messages(GOOD) == expected
    assert to_messages({"instruction": "What is LPG?", "output": "Propane."}) == expected
    assert to_messages({"conversations": [{"from": "human", "value": "What is LPG?"},
                                          {"from": "gpt", "value": "Propane."}]}) == expected
    alpaca = to_messages({"instruction": "Define", "input": "LPG", "output": "Propane.", "system": "Be brief."})
    assert alpaca[0] == {"role": "system", "content": "Be brief."} and alpaca[1]["content"] == "Define\n\nLPG"


@pytest.mark.parametrize("row, reason", [
    ({"messages": [{"role": "user", "content": "q"}, {"role": "bot", "content": "a"}]}, "unknown_role"),
    ({"conversations": [{"from": "human", "value": "q"}, {"from": "robot", "value": "a"}]}, "unknown_role"),
    ({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "  "}]}, "empty_assistant"),
    ({"instruction": "q", "output": ""}, "empty_assistant"),
    ({"messages": [{"role": "user", "content": "q"}]}, "no_assistant_turn"),
    ({"text": "no chat here"}, "unknown_format"),
])
def test_bad_rows_have_a_reason(row, reason):
    with pytest.raises(BadRow) as err:
        to_messages(row)
    assert err.value.reason == reason


def test_bad_row_stops_the_run_naming_file_and_line(tmp_path, tokenizer):
    path = write_jsonl(tmp_path / "d.jsonl", [GOOD, "{not json", GOOD])
    with pytest.raises(DataError) as err:
        dataset.build(DataConfig(files=[{"path": str(path)}], eval_fraction=0), tokenizer, seed=0)
    assert f"{path}:2: malformed_json" in str(err.value)


def test_skip_mode_counts_every_bad_row(tmp_path, tokenizer):
    long = {"messages": [{"role": "user", "content": "word " * 400}, {"role": "assistant", "content": "ok"}]}
    rows = [GOOD, "{not json", {"messages": [{"role": "user", "content": "q"}, {"role": "nurse", "content": "a"}]},
            {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": ""}]}, long, GOOD]
    path = write_jsonl(tmp_path / "d.jsonl", rows)
    built = dataset.build(DataConfig(files=[{"path": str(path)}], on_error="skip", eval_fraction=0, max_length=64),
                          tokenizer, seed=0)
    bad = built.stats["bad_rows"]
    assert built.stats["train_rows"] == 2 and bad["skipped"] == 4
    assert bad["by_reason"] == {"malformed_json": 1, "unknown_role": 1, "empty_assistant": 1, "over_length": 1}
    assert any(f"{path}:5: over_length" in line for line in bad["first"])
    assert built.sources[0]["rows"] == 2 and len(built.sources[0]["sha256"]) == 64


def test_over_length_is_an_error_unless_truncating(tmp_path, tokenizer):
    long = {"messages": [{"role": "user", "content": "short"}, {"role": "assistant", "content": "word " * 200}]}
    path = write_jsonl(tmp_path / "d.jsonl", [GOOD, long])
    with pytest.raises(DataError, match=rf"{path}:2: over_length"):
        dataset.build(DataConfig(files=[{"path": str(path)}], eval_fraction=0, max_length=64), tokenizer, seed=0)
    built = dataset.build(DataConfig(files=[{"path": str(path)}], eval_fraction=0, max_length=64, truncate=True),
                          tokenizer, seed=0)
    assert built.stats["truncated_rows"] == 1 and max(len(r) for r in built.train) == 64


def test_eval_only_dataset_is_refused(tokenizer):
    bench = next((data_root() / "pubmedqa").glob("*.json*"))
    with pytest.raises(DataError, match="eval-only dataset 'pubmedqa'"):
        dataset.build(DataConfig(files=[{"path": str(bench)}]), tokenizer, seed=0)


def test_loss_only_on_assistant_turns_through_end_of_turn(tokenizer):
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello there"}, {"role": "user", "content": "Bye"},
                {"role": "assistant", "content": "Goodbye"}]
    encoded = ChatEncoder(tokenizer, 256).encode(messages)
    trained = encoded.targets[encoded.targets != IGNORE]
    assert tokenizer.decode(trained) == "Hello there<|im_end|>Goodbye<|im_end|>"
    assert encoded.targets[-1] == IGNORE   # no target past the end of the row (packing never trains across rows)


def test_row_order_is_deterministic_and_resumable():
    a, b, c = RowOrder(10, seed=1), RowOrder(10, seed=1), RowOrder(10, seed=2)
    assert a.take(0, 25) == b.take(0, 25) and a.take(0, 10) != c.take(0, 10)
    assert sorted(a.take(0, 10)) == list(range(10)) and sorted(a.take(10, 10)) == list(range(10))
    assert a.take(7, 9) == a.take(0, 16)[7:]                      # any position, no replay needed
    assert RowOrder(5, seed=1, shuffle=False).take(3, 4) == [3, 4, 0, 1]
    both = step_rows(a, 3, batch_size=2, grad_accum=2, world=2)
    parts = [micro_batch_rows(a, 3, m, batch_size=2, grad_accum=2, world=2, rank=r) for m in (0, 1) for r in (0, 1)]
    assert sum(parts, []) == both


def test_pack_resets_positions_and_matches_padded_content(tokenizer):
    enc = ChatEncoder(tokenizer, 256)
    rows = [enc.encode(GOOD["messages"]), enc.encode([{"role": "user", "content": "Define API gravity please"},
                                                      {"role": "assistant", "content": "Density relative to water."}])]
    packed, padded = pack(rows), pad(rows, tokenizer.pad_token_id)
    n0, n1 = len(rows[0]), len(rows[1])
    assert packed.cu_seqlens.tolist() == [0, n0, n0 + n1] and packed.input_ids.shape == (1, n0 + n1)
    assert packed.position_ids[0, n0].item() == 0 and packed.max_seqlen == max(n0, n1)
    assert packed.n_tokens == padded.n_tokens == n0 + n1 and packed.n_targets == padded.n_targets
    assert np.array_equal(padded.targets[1, :n1].numpy(), packed.targets[0, n0:].numpy())
    assert (padded.targets[0, n0:] == IGNORE).all() and padded.attention_mask[0].sum() == n0
