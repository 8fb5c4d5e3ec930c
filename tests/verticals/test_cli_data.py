"""`domainlm data inspect|card` through the real entry point; user errors are one line, never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


def domainlm(*args, env=None):
    return subprocess.run([sys.executable, "-m", "domainlm.cli", "data", *args], check=False, capture_output=True,
                          text=True, env={**os.environ, **(env or {})}, timeout=300)


@pytest.mark.slow
def test_inspect_writes_histogram_and_summary(isolated_home, tmp_path):
    result = domainlm("inspect", "petrochem", "--out", str(tmp_path), "--max-rows", "300")
    assert result.returncode == 0, result.stderr
    png = (tmp_path / "token_lengths.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000
    summary = json.loads((tmp_path / "inspect.json").read_text())
    sources = {s["name"]: s for s in summary["sources"]}
    assert sources["chemlit_qa"]["rows"] == 843 and sources["chemlit_qa_test"]["eval"] == 211
    assert sources["authored"]["project_authored"] and set(sources["authored"]["lang_mix"]) == {"en", "zh"}
    tokens = summary["tokens"]
    assert tokens["rows_measured"] == 300 and tokens["all"]["p50"] > 50 and tokens["all"]["max"] >= tokens["all"]["p95"]
    assert tokens["model"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert "project-authored ['authored']" in result.stdout and "histogram:" in result.stdout


def test_card_command_writes_json_and_markdown(tmp_path):
    result = domainlm("card", "marine", "--out", str(tmp_path), env={"DOMAINLM_HOME": str(tmp_path / "home")})
    assert result.returncode == 0, result.stderr
    card = json.loads((tmp_path / "data_card.json").read_text())
    assert card["vertical"] == "marine" and card["sources"][0]["project_authored"]
    assert card["decontamination"]["train_rows_checked"] == card["sources"][0]["train"]
    assert (tmp_path / "data_card.md").read_text().startswith("# Data card: Marine economy / 海洋经济 (`marine`)")


@pytest.mark.parametrize("args,env,message", [
    (["card", "medical", "--no-decontamination"], {"DOMAINLM_DATA": "/nonexistent/data"},
     "domainlm: error: domain data folder not found: /nonexistent/data"),
    (["card", "oceans"], {}, "domainlm: error: unknown vertical 'oceans'"),
])
def test_user_errors_are_one_line(tmp_path, args, env, message):
    result = domainlm(*args, "--out", str(tmp_path), env=env)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and result.stderr.startswith(message)
    assert not list(tmp_path.iterdir())  # nothing half-written
