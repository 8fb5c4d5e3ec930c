"""`domainlm data synth` against a real OpenAI-compatible teacher (the embedded model behind FastAPI + uvicorn,
started here), plus the filters it applies, each checked on its own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from domainlm.data.sources import parse_file
from domainlm.data.sources.base import Record
from domainlm.data.benchmarks import eval_set_texts
from domainlm.ports import free_port
from domainlm.verticals import get_vertical
from domainlm.verticals.dedup import MinHashIndex
from domainlm.verticals.synth import SynthConfig, check, clean_answer, clean_question

HERE = Path(__file__).resolve().parent
CFG = SynthConfig(endpoint="http://unused")


def test_format_length_and_language_filters():
    good_q, good_a = "What drives coastal upwelling?", "Alongshore wind drives Ekman transport offshore."
    assert check(good_q, good_a, "en", CFG) is None
    assert check("Explain how a tide gauge works", good_a, "en", CFG) is None
    assert check("The ocean is big.", good_a, "en", CFG).startswith("format: not a question")
    assert check(good_q, good_q + " Because.", "en", CFG) == "format: answer repeats the question"
    assert check(good_q, "Too short.", "en", CFG) == "length: answer"
    assert check(good_q, good_a, "zh", CFG) == "language"
    assert check(good_q, "", "en", CFG).startswith("format: empty")
    assert check(good_q, good_a + "\ufffd", "en", CFG) == "format: broken characters"
    assert check("什么是上升流？", "上升流是深层冷水在风的作用下上涌到表层的现象。", "zh", CFG) is None
    assert clean_question("1. Question: What is a rip current?\nAnswer: ...") == "What is a rip current?"
    assert clean_answer("Answer: It flows seaward. It is narrow and", truncated=True) == "It flows seaward."
    assert clean_answer("一句话没有说完", truncated=True) == ""


def test_near_duplicates_and_eval_overlap_are_caught():
    index = MinHashIndex(threshold=0.8)
    seed = ("What is Ekman transport, and in which direction does it move water relative to the wind in the "
            "Northern Hemisphere when the wind blows steadily along a straight coast for several days?")
    index.add("seed", seed)
    assert index.query(seed.upper().replace(",", "")) == ("seed", 1.0)  # case and punctuation do not hide a copy
    near = index.query(seed.replace("several days", "a week"))  # 2 words changed: shingle Jaccard 28/32 ≈ 0.88
    assert near is not None and near[0] == "seed"
    assert index.query("How are tsunami warnings issued in the Pacific?") is None
    assert index.add_if_new("copy", seed + "?") is not None and "copy" not in index.keys
    medqa = eval_set_texts("medqa_usmle_4opt")[3][1]
    hits = get_vertical("marine").eval_index().hits("Q: " + medqa)
    assert "medqa_usmle_4opt" in hits


@pytest.fixture
def teacher(base_model, tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}/v1"
    with open(tmp_path / "teacher.log", "w") as log:
        proc = subprocess.Popen([sys.executable, str(HERE / "teacher_app.py"), str(base_model.path), str(port)],
                                stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert proc.poll() is None, (tmp_path / "teacher.log").read_text()
            try:
                if httpx.get(f"{url}/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.slow
def test_synth_through_a_real_teacher_endpoint(teacher, isolated_home, tmp_path):
    out = tmp_path / "synth.jsonl"
    result = subprocess.run(
        [sys.executable, "-m", "domainlm.cli", "data", "synth", "marine", "--endpoint", teacher, "-n", "2",
         "--lang", "en", "--temperature", "0", "--max-question-tokens", "32", "--max-answer-tokens", "48",
         "--out", str(out)],
        check=False, capture_output=True, text=True, env={**os.environ}, timeout=240)
    assert result.returncode == 0, result.stderr
    report = json.loads(Path(f"{out}.report.json").read_text())
    stages = report["stages"]
    assert report["teacher"] == "teacher" and stages["generated"] == 2
    rejected = sum(n for k, n in stages.items() if k.startswith("rejected: "))
    assert rejected + stages["kept"] == 2  # every candidate is kept or rejected for a named reason
    # greedy SmolLM2 writes well-formed questions: at least one passes format/length/language and reaches dedup
    assert stages["kept"] + stages.get("rejected: near-duplicate", 0) + stages.get("rejected: contaminated", 0) >= 1
    # 18 shared eval sets (domain, general, safety), the two authored safety sets, the vertical's held-out split
    checked = report["eval_sets_checked"]
    assert {"marine_heldout", "medsafetybench", "xstest", "marine_safety"} <= set(checked) and len(checked) == 21, \
        checked
    # the output is a valid qa_jsonl source; every kept row passes the filters again
    records = list(parse_file("qa_jsonl", out))
    assert len(records) == stages["kept"] and all(isinstance(r, Record) for r in records)
    index = get_vertical("marine").eval_index()
    for row in map(json.loads, out.read_text().splitlines()):
        assert check(row["question"], row["answer"], "en", CFG) is None
        assert index.hits(row["question"] + "\n" + row["answer"]) == {}
        assert row["teacher"] == "teacher" and len(row["seed_ids"]) == 3
