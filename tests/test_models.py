"""The embedded default: prepared once, hashed, idempotent, answers coherently; resolver errors are clear."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from domainlm.errors import ModelError
from domainlm.hashing import sha256_file
from domainlm.models import resolve_base
from domainlm.models.embedded import EMBEDDED, MARKER, prepare


def test_prepared_folder_is_plain_bf16_checkpoint(base_model):
    config = json.loads((base_model.path / "config.json").read_text())
    assert "quantization_config" not in config
    marker = json.loads((base_model.path / MARKER).read_text())
    assert marker["weights_sha256"] == sha256_file(base_model.path / "model.safetensors") == base_model.weights_sha256
    assert base_model.chat_template_sha256 == marker["chat_template_sha256"]
    assert base_model.family == "llama" and base_model.model_id == "HuggingFaceTB/SmolLM2-135M-Instruct"


def test_prepare_is_idempotent(base_model):
    before = (base_model.path / "model.safetensors").stat().st_mtime_ns
    info = prepare(EMBEDDED["smollm2-135m"], base_model.path)
    assert info["weights_sha256"] == base_model.weights_sha256
    assert (base_model.path / "model.safetensors").stat().st_mtime_ns == before


def test_unknown_and_offline_hub_refs_explain_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(ModelError, match="huggingface-cli download Qwen/Qwen2.5-7B-Instruct"):
        resolve_base("Qwen/Qwen2.5-7B-Instruct")
    with pytest.raises(ModelError, match="unknown base model"):
        resolve_base("no-such-model")


def test_unprepared_embedded_model_says_how_to_prepare(tmp_path, monkeypatch):
    monkeypatch.setenv("DOMAINLM_HOME", str(tmp_path))
    with pytest.raises(ModelError, match="domainlm model prepare smollm2-135m"):
        resolve_base("smollm2-135m")


@pytest.mark.slow
def test_generate_cli_gives_on_topic_answer(base_model):
    result = subprocess.run([sys.executable, "-m", "domainlm.cli", "model", "generate", "--max-new-tokens", "48",
                             "--prompt", "What is catalytic cracking?"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    answer = result.stdout.lower()
    assert "crack" in answer or "catalyst" in answer or "hydrocarbon" in answer, answer
