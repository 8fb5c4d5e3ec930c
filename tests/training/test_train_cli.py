"""`domainlm train` end to end on the real model, in real subprocesses: the artifact contract, registration,
metrics and TensorBoard files, two gloo ranks under torchrun, SIGKILL + resume, and the fixture adapters."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from domainlm.artifacts import verify_artifact
from domainlm.hashing import sha256_file
from domainlm.kernels.dtypes import auto_dtype
from tests.fixtures.training import QA

pytestmark = pytest.mark.slow


def make_run(folder: Path, *, steps: int, batch: int = 4, precision: str = "auto", extra: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / "qa.jsonl"
    data.write_text("".join(json.dumps({"messages": [{"role": "user", "content": q},
                                                     {"role": "assistant", "content": a}]}) + "\n"
                            for q, a in QA["medical"]))
    config = folder / "train.yaml"
    config.write_text(f"""# launch: domainlm train {config}
name: test-run
vertical: medical
output_dir: {folder / 'run'}
data:
  files: [{{path: {data}, name: test_qa, licence: CC0}}]
  max_length: 64
  eval_fraction: 0.17
lora: {{r: 4, alpha: 8}}
train: {{batch_size: {batch}, max_steps: {steps}, lr: 1.0e-3, warmup_steps: 1, threads: 1, precision: {precision}}}
{extra}
""")
    return config


def cli(*args, check=True, **kwargs):
    env = {**os.environ, "DOMAINLM_PROGRESS": "off", "PYTHONUNBUFFERED": "1"}
    result = subprocess.run([sys.executable, "-m", "domainlm.cli", *args], capture_output=True, text=True, env=env,
                            **kwargs)
    if check:
        assert result.returncode == 0, result.stderr[-3000:]
    return result


def metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_train_writes_registered_artifact_and_two_gloo_ranks_match_it(tmp_path, isolated_home, base_model):
    """One process with 4 rows per step (registered, every artifact field checked), then `--nproc 2`: torchrun +
    Accelerator(cpu=True), two gloo ranks with 2 rows each, must give the same losses (fp32: only the summation
    order differs) and the same held-out loss (evaluated across both ranks)."""
    extra = "eval: {every_steps: 2}\ncheckpoint: {every_steps: 2, keep_last: 1}"
    one = make_run(tmp_path / "one", steps=3, batch=4, precision="fp32", extra=extra)
    out = json.loads(cli("train", str(one)).stdout)
    artifact = Path(out["artifact"])
    assert sorted(p.name for p in artifact.iterdir()) == ["README.md", "adapter_config.json",
                                                          "adapter_model.safetensors", "manifest.json"]
    manifest = verify_artifact(artifact)
    assert manifest["base"]["weights_sha256"] == base_model.weights_sha256
    assert manifest["base"]["chat_template_sha256"] == base_model.chat_template_sha256
    source = manifest["data_sources"][0]
    assert source["sha256"] == sha256_file(tmp_path / "one" / "qa.jsonl") and source["rows"] == 20
    assert manifest["config"]["resolved"]["lora"]["target_modules"][0] == "q_proj"
    m = manifest["metrics"]
    assert m["steps"] == 3 and m["eval_loss"] < m["eval_loss_initial"] and m["processes"] == 1
    run = tmp_path / "one" / "run"
    lines = metrics(run)
    assert [line["step"] for line in lines if "loss" in line] == [1, 2, 3]
    assert {line["step"] for line in lines if "eval_loss" in line} == {2, 3}
    assert all(line["tokens_per_s"] > 0 for line in lines if "loss" in line)
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["step-000002"]
    from domainlm.registry import Registry

    entry = Registry().get("medical", int(out["registered"].split("@")[1]))
    assert entry.stage == "candidate" and verify_artifact(entry.path)["files"] == manifest["files"]

    two = make_run(tmp_path / "two", steps=3, batch=2, precision="fp32", extra=extra)
    result = cli("train", str(two), "--nproc", "2", "--no-register")
    assert result.stderr.count("training setup") == 1 and "processes=2" in result.stderr
    assert verify_artifact(tmp_path / "two" / "run" / "adapter")["metrics"]["processes"] == 2
    pairs = zip((line for line in metrics(tmp_path / "two" / "run")), lines, strict=True)
    for a, b in pairs:
        assert a["step"] == b["step"]
        for key in ("loss", "eval_loss"):
            if key in b:
                assert abs(a[key] - b[key]) < 1e-4 * b[key], (key, a, b)


def test_sigkill_mid_training_then_resume_ends_with_the_same_loss(tmp_path):
    """Tolerance: identical to 1e-6 relative. Measured: identical bits (deterministic CPU math, restored RNG,
    data position derived from the step). Precision auto: bf16 on AVX512-BF16 hosts, fp32 on AVX2-only ones."""
    extra = "checkpoint: {every_steps: 2, keep_last: 2}\nlog: {tensorboard: false}"
    whole = make_run(tmp_path / "whole", steps=6, extra=extra)
    env = {**os.environ, "DOMAINLM_PROGRESS": "off"}
    # the uninterrupted run goes alongside (one thread each: 2 cores take both; results do not depend on timing)
    whole_log = (tmp_path / "whole.log").open("w")   # a file, not a pipe: nobody reads it until the end
    uninterrupted = subprocess.Popen([sys.executable, "-m", "domainlm.cli", "train", str(whole), "--no-register"],
                                     stdout=subprocess.DEVNULL, stderr=whole_log, env=env)
    killed = make_run(tmp_path / "killed", steps=6, extra=extra)
    run = tmp_path / "killed" / "run"
    proc = subprocess.Popen([sys.executable, "-m", "domainlm.cli", "train", str(killed), "--no-register"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.time() + 600
    while not (run / "checkpoints" / "step-000004" / "state.json").exists():
        assert proc.poll() is None and time.time() < deadline, "the run ended before its step-4 checkpoint"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (run / "adapter").exists(), "killed too late: the run had finished"
    resumed = cli("train", str(killed), "--no-register")
    assert "resumed" in resumed.stderr
    uninterrupted.wait(timeout=600)
    whole_log.close()
    assert uninterrupted.returncode == 0, (tmp_path / "whole.log").read_text()[-3000:]
    a, b = (json.loads((folder / "run" / "adapter" / "manifest.json").read_text())["metrics"]
            for folder in (tmp_path / "whole", tmp_path / "killed"))
    assert abs(a["train_loss_final"] - b["train_loss_final"]) <= 1e-6 * a["train_loss_final"]
    assert abs(a["eval_loss"] - b["eval_loss"]) <= 1e-6 * a["eval_loss"]
    steps = [line["step"] for line in metrics(run) if "loss" in line]
    assert steps == list(range(1, 7))   # lines after the checkpoint were dropped and written once by the resume
    from safetensors.torch import load_file

    wa, wb = (load_file(str(f / "run" / "adapter" / "adapter_model.safetensors"))
              for f in (tmp_path / "whole", tmp_path / "killed"))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert a["dtype"] == b["dtype"] == auto_dtype("cpu")   # the host's class decided; the manifest says what ran


def test_fixture_adapters_are_real_trained_peft_folders(trained_adapters, base_model):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    assert set(trained_adapters) >= {"medical", "petrochem"}
    for vertical, folder in trained_adapters.items():
        manifest = verify_artifact(folder)
        assert manifest["vertical"] == vertical
        assert manifest["metrics"]["eval_loss"] < manifest["metrics"]["eval_loss_initial"]
    model = AutoModelForCausalLM.from_pretrained(base_model.path, dtype=torch.float32)
    ids = torch.tensor([[1, 4093, 198, 2683, 359, 2, 198, 1, 520, 9531, 198]])
    with torch.no_grad():
        before = model(ids).logits
        after = PeftModel.from_pretrained(model, str(trained_adapters["medical"]))(ids).logits
    assert (after - before).abs().max() > 1e-3
