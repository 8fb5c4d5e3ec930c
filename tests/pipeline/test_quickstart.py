"""`domainlm quickstart --smoke`: every stage for real (train, eval, register, promote, vLLM gateway, report)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from domainlm.errors import ConfigError
from domainlm.pipeline.quickstart import load_pipeline
from domainlm.pipeline.stages import StageRunner

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "configs" / "pipeline" / "quickstart.yaml"


def test_smoke_section_merges_and_typos_fail_at_load(tmp_path):
    cfg = load_pipeline(CONFIG, smoke=True)
    assert cfg.eval.limit == 2 and "train.max_steps=2" in cfg.train.overrides and cfg.smoke == {}
    bad = tmp_path / "q.yaml"
    bad.write_text(CONFIG.read_text().replace("    limit: 2", "    limitt: 2"))
    with pytest.raises(ConfigError, match="limitt"):
        load_pipeline(bad)


def test_stage_runner_skips_done_stages_and_reruns_invalid_ones(tmp_path):
    calls = []
    runner = StageRunner(tmp_path)
    runner.run("a", {"x": 1}, lambda: calls.append("a") or {"v": 1})
    again = StageRunner(tmp_path)  # a new process reads state.json
    assert again.run("a", {"x": 1}, lambda: calls.append("a2") or {"v": 2}) == {"v": 1}
    assert again.run("a", {"x": 2}, lambda: calls.append("a3") or {"v": 3}) == {"v": 3}  # inputs changed
    assert again.run("a", {"x": 2}, lambda: calls.append("a4") or {"v": 4}, lambda r: False) == {"v": 4}
    assert calls == ["a", "a3", "a4"]


@pytest.mark.slow
def test_quickstart_smoke_end_to_end_then_rerun_skips(tmp_path, isolated_home):
    workdir = tmp_path / "qs"
    cmd = [sys.executable, "-m", "domainlm.cli", "quickstart", "--config", str(CONFIG), "--smoke",
           f"workdir={workdir}"]
    env = {**os.environ, "DOMAINLM_PROGRESS": "off"}
    first = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=1500, env=env)
    assert first.returncode == 0, first.stderr[-4000:]
    assert "Traceback" not in first.stderr

    rows = json.loads((workdir / "summary.json").read_text())
    assert [r["vertical"] for r in rows] == ["medical", "petrochem", "marine"]
    for row in rows:
        assert row["version"] == 1
        assert row["nll_reduction"] is not None and row["p_value"] is not None
        assert row["answer"], f"{row['vertical']}: no answer through the gateway"
        assert row["served_by"].startswith(row["vertical"])
        assert row["promotion_reason"]  # promoted, or the gate that blocked it, in words
    summary = (workdir / "summary.md").read_text()
    assert "| medical | 1 |" in summary and "One question per vertical" in summary
    assert (workdir / "charts" / "quickstart.png").stat().st_size > 5000
    for vertical in ("medical", "petrochem", "marine"):
        record = json.loads((workdir / "filing" / f"filing_{vertical}_v1.json").read_text())
        assert record["base_model"]["weights_sha256"] and record["data_sources"]
        assert record["evaluation"]["tasks"] and record["safety_policy"]
    medical = (workdir / "filing" / "filing_medical_v1.md").read_text()
    assert "research_only" in medical or "non_commercial" in medical  # ChatDoctor / Huatuo restrictions shown

    second = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900, env=env)
    assert second.returncode == 0, second.stderr[-4000:]
    status = json.loads(second.stdout.strip().splitlines()[-1])
    assert not any(s.startswith(("train", "eval", "register")) for s in status["ran"]), status
    assert "train:medical" in status["skipped"]


def test_the_summary_shows_every_gate_with_its_number_interval_and_verdict():
    from domainlm.pipeline.summary import gate_table
    from domainlm.verticals import get_vertical

    gates = get_vertical("medical").gates
    report = {
        "tasks": {"medquad_heldout_nll": {"kind": "nll", "suite": "domain",
                                          "comparisons": {"m@1": {"ci_low": 14.97, "ci_high": 29.65}}}},
        "summary": {"adapter": "m@1", "nll_reduction": 0.216, "nll_reduction_low": 0.1497, "domain_gain": 2.5,
                    "significant": True, "p_value": 0.0035,
                    "domain_effect": {"effect": 6.2, "ci_low": 2.1, "ci_high": 10.3},
                    "general_noninferiority": {"metric": "gold_prob", "diff": 0.01, "lower": -0.42, "n": 671,
                                               "passed": True, "power": {"pass_if_equal": 1.0,
                                                                         "fail_if_regressed": 1.0}},
                    "format_adherence": {"pubmedqa": {"base": 100.0, "adapter": 12.5, "drop": 87.5,
                                                      "ci_low": -97.5, "ci_high": -75.0}}}}
    rows = {r["gate"].split(" (")[0].split(":")[0]: r for r in gate_table(report, gates)}
    assert rows["held-out answer NLL cut"]["value"] == "21.6%" and rows["held-out answer NLL cut"]["passed"]
    assert rows["held-out answer NLL cut"]["interval"] == "[15.0%, 29.6%]"
    assert rows["general non-inferior"]["passed"] and "−2 pts" in rows["general non-inferior"]["threshold"]
    assert rows["pubmedqa"]["passed"] is False and rows["pubmedqa"]["value"] == "12.5% (base 100.0%)"
    assert rows["domain suite better than base"]["passed"]
