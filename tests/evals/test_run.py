"""End to end on the real model: base and a trained adapter on the same items, report files, paired statistics,
registry attachment, results cache, determinism, resumable runs and integrity refusal."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from domainlm.artifacts import artifact_id, read_manifest
from domainlm.errors import IntegrityError
from domainlm.evals import run_eval
from tests.evals.conftest import write_config, write_nll_task

pytestmark = pytest.mark.slow
PNG = b"\x89PNG\r\n\x1a\n"


def _per_item(report: dict) -> dict:
    return {name: [item["results"] for item in task["items"]] for name, task in report["tasks"].items()}


def test_paired_report_for_a_registered_adapter(isolated_home, tmp_path, trained_adapters):
    from domainlm.registry import Registry

    registry = Registry()
    entry = registry.register(trained_adapters["medical"], vertical="medical")
    nll_task = write_nll_task(tmp_path)
    config = write_config(tmp_path, domain=[{"file": str(nll_task)}, {"name": "medmcqa", "limit": 6}],
                          general=[{"name": "mmlu_general", "params": {"per_subject": 1}, "limit": 6}])
    report = run_eval(config, model=f"medical@{entry.version}", output_dir=tmp_path / "out", registry=registry)

    # files: JSON, Markdown, both charts, written together
    out = tmp_path / "out"
    assert json.loads((out / "report.json").read_text())["summary"] == report["summary"]
    assert (out / "charts" / "tasks.png").read_bytes()[:8] == PNG
    assert (out / "charts" / "general.png").read_bytes()[:8] == PNG
    markdown = (out / "report.md").read_text()
    assert "fixture_qa_nll" in markdown and "prompt style **plain**" in markdown

    # the subject is the exact artifact, and the same items were scored for base and adapter
    manifest = read_manifest(entry.path)
    assert report["subject"]["artifact_id"] == artifact_id(manifest) == entry.artifact_id
    assert report["subject"]["vertical"] == "medical" and report["subject"]["version"] == entry.version
    labels = ["base", f"medical@{entry.version}"]
    nll = report["tasks"]["fixture_qa_nll"]
    assert nll["n_items"] == 24 and all(set(i["results"]) == set(labels) for i in nll["items"])
    base_nll = [i["results"]["base"]["nll"] for i in nll["items"]]
    adapter_nll = [i["results"][labels[1]]["nll"] for i in nll["items"]]
    for label, values in zip(labels, (base_nll, adapter_nll), strict=True):
        score = nll["scores"][label]["nll"]
        assert score["mean"] == pytest.approx(sum(values) / len(values))
        assert score["ci_low"] <= score["mean"] <= score["ci_high"]

    # the adapter was trained on these answers: answer NLL drops, significantly, and the summary says so
    summary = report["summary"]
    reduction = (sum(base_nll) - sum(adapter_nll)) / sum(base_nll)
    assert summary["nll_reduction"] == pytest.approx(reduction) and reduction > 0.15
    assert nll["comparisons"][labels[1]]["p_value"] < 0.01
    assert summary["significant"] is True and summary["p_value"] < 0.05
    mc = report["tasks"]["medmcqa"]
    assert summary["domain_gain"] == pytest.approx(100 * (mc["scores"][labels[1]]["acc"]["mean"]
                                                          - mc["scores"]["base"]["acc"]["mean"]))
    general = report["tasks"]["mmlu_general"]
    assert summary["general_regression"] == pytest.approx(100 * (general["scores"]["base"]["acc"]["mean"]
                                                                 - general["scores"][labels[1]]["acc"]["mean"]))

    # attached to the registry entry: promotion gates read this very report
    assert report["attached"] is True
    decision = registry.check_promotion("medical", entry.version)
    assert decision.checked["min_nll_reduction"][0] == pytest.approx(summary["nll_reduction"])

    # a rerun is answered from the cache (same artifact, same requests) with identical per-item results
    again = run_eval(config, model="base", adapters=[str(entry.path)], output_dir=tmp_path / "again", attach=False)
    assert all(t["computed"] == 0 for t in again["timings"].values())
    assert [[r["nll"] for r in (i["results"]["base"], i["results"][labels[1]])] for i in
            again["tasks"]["fixture_qa_nll"]["items"]] == [[b, a] for b, a in zip(base_nll, adapter_nll, strict=True)]


def test_deterministic_mode_repeats_exactly_without_cache(isolated_home, tmp_path):
    config = write_config(tmp_path, domain=[{"name": "medqa", "limit": 4}, {"name": "pubmedqa", "limit": 2}],
                          cache={"enabled": False}, hf={"threads": 1, "max_length": 512},
                          prompt={"style": "chat", "few_shot": 1})
    first = run_eval(config, output_dir=tmp_path / "a")
    second = run_eval(config, output_dir=tmp_path / "b")
    assert first["summary"] is None and first["settings"]["prompt_style"] == "chat"
    assert _per_item(first) == _per_item(second)
    assert all(isinstance(i["results"]["base"]["output"], str) for i in first["tasks"]["pubmedqa"]["items"])


def _domainlm(*args, **kwargs):
    env = {**os.environ, "DOMAINLM_PROGRESS": "off"}
    return subprocess.Popen([sys.executable, "-m", "domainlm.cli", "eval", *map(str, args)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def test_killed_run_resumes_from_the_cache(isolated_home, tmp_path):
    items = 80                        # × 4 options: enough work that the interrupt lands mid-run on a fast CPU too
    config = write_config(tmp_path, domain=[{"name": "mmlu_medical", "limit": items}])
    cache = tmp_path / "cache.sqlite"
    proc = _domainlm(config, "--output", tmp_path / "killed", "--commit-every", 4)
    deadline = time.monotonic() + 240
    rows = 0
    while time.monotonic() < deadline and proc.poll() is None:  # interrupt once some chunks are committed
        if cache.exists():
            with sqlite3.connect(cache) as db:
                try:
                    rows = db.execute("SELECT COUNT(*) FROM results").fetchone()[0]
                except sqlite3.OperationalError:
                    rows = 0
            if rows >= 4:             # the first committed chunk: interrupt at once (a fast CPU finishes quickly)
                break
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "interrupted" in err and "Traceback" not in err
    with sqlite3.connect(cache) as db:
        kept = db.execute("SELECT COUNT(*) FROM results").fetchone()[0]
    assert 4 <= kept < 4 * items and not (tmp_path / "killed").exists()  # no half-written report

    resumed = run_eval(config, output_dir=tmp_path / "resumed")
    assert resumed["timings"]["base"]["cached"] == kept
    assert resumed["timings"]["base"]["computed"] == 4 * items - kept
    fresh = run_eval(config, output_dir=tmp_path / "fresh", overrides=["cache.enabled=false"])
    assert _per_item(resumed) == _per_item(fresh)


def test_tampered_adapter_is_refused_with_one_line(isolated_home, tmp_path, trained_adapters):
    tampered = tmp_path / "tampered"
    shutil.copytree(trained_adapters["medical"], tampered)
    weights = tampered / "adapter_model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    config = write_config(tmp_path, domain=[{"name": "medqa", "limit": 2}])
    with pytest.raises(IntegrityError, match="adapter_model.safetensors: sha256 mismatch"):
        run_eval(config, adapters=[str(tampered)])
    proc = _domainlm(config, "--adapter", tampered)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2 and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("domainlm: error: artifact") and "sha256 mismatch" in err
