"""DOMAINLM_CPU_FLAGS_OFF: one switch makes the whole product behave as on a CPU without AVX512-BF16 — the flags,
the backend's bf16 answer and vLLM dtype, `dtype: auto`, training precision, the native kernels and torch's own
ISA (checked in a fresh process, since torch reads its ISA cap at import)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from domainlm.errors import ConfigError
from domainlm.kernels.dtypes import auto_dtype, resolve_dtype
from domainlm.kernels.host import FLAGS_OFF_ENV, cpu_class, cpu_flags, detected_cpu_flags, hidden_flag_patterns


def test_portable_hides_every_avx512_and_amx_flag_and_nothing_else(monkeypatch):
    monkeypatch.setenv(FLAGS_OFF_ENV, "portable")
    flags = cpu_flags()
    assert not any(f.startswith(("avx512", "amx")) for f in flags)
    assert flags == {f for f in detected_cpu_flags() if not f.startswith(("avx512", "amx"))}
    assert cpu_class() in ("avx2", "baseline")
    assert auto_dtype("cpu") == "float32" and resolve_dtype("auto") == "float32"
    assert resolve_dtype("bfloat16") == "bfloat16"   # an explicit choice is kept: emulated bf16 still runs


def test_patterns_and_names_combine_and_unset_means_the_host(monkeypatch):
    monkeypatch.setenv(FLAGS_OFF_ENV, "avx512_bf16, amx*  sse4_2")
    assert hidden_flag_patterns() == ("avx512_bf16", "amx*", "sse4_2")
    assert not {"avx512_bf16", "amx_bf16", "amx_tile", "sse4_2"} & cpu_flags()
    monkeypatch.delenv(FLAGS_OFF_ENV)
    assert cpu_flags() == detected_cpu_flags()
    native = bool({"avx512_bf16", "amx_bf16"} & detected_cpu_flags())
    assert auto_dtype("cpu") == ("bfloat16" if native else "float32")
    with pytest.raises(ValueError, match="expected auto or one of"):
        resolve_dtype("bf16")


def test_bf16_training_is_refused_with_a_clear_error_where_bf16_is_not_native(monkeypatch):
    from domainlm.kernels.backends import get_backend
    from domainlm.training.loop import _dtype

    monkeypatch.setenv(FLAGS_OFF_ENV, "portable")
    cpu = get_backend("cpu")
    with pytest.raises(ConfigError, match="train.precision: bf16 is not supported natively on backend cpu"):
        _dtype("bf16", cpu)
    assert str(_dtype("auto", cpu)) == "torch.float32"


PROBE = """
import json, domainlm, torch
from domainlm.kernels.backends import get_backend
from domainlm.kernels.ops.cpu_elementwise import KERNEL
from domainlm.serving.engines.lora_mode import vllm_engine_args
cpu = get_backend("cpu")
from torch._inductor.runtime.cache_dir_utils import cache_dir
print(json.dumps({"isa": torch.backends.cpu.get_cpu_capability(), "bf16": cpu.supports_bf16(),
                  "vllm_dtype": vllm_engine_args(cpu)["dtype"], "kernel": KERNEL.unavailable_reason(),
                  "inductor_cache": cache_dir()}))
"""


def probe(env_extra: dict) -> dict:
    import os

    env = {k: v for k, v in os.environ.items()
           if k not in (FLAGS_OFF_ENV, "ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "TORCHINDUCTOR_CACHE_DIR")}
    out = subprocess.run([sys.executable, "-c", PROBE], env={**env, **env_extra}, capture_output=True, text=True,
                         timeout=120, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_the_switch_reaches_the_backend_the_kernels_and_torch_in_a_fresh_process():
    hidden, host = probe({FLAGS_OFF_ENV: "portable"}), probe({})
    assert hidden["bf16"] is False and hidden["vllm_dtype"] == "float32"
    assert hidden["kernel"].startswith("the CPU has no AVX512-BF16")
    if any(f.startswith("avx512") for f in detected_cpu_flags()):
        assert hidden["isa"] == "AVX2", hidden           # torch's dispatch capped too, not only our own choices
        assert FLAGS_OFF_ENV in hidden["kernel"]
        # torch.compile keeps the capped ISA's kernels apart: its cache keys do not tell the two ISAs apart
        assert hidden["inductor_cache"].endswith("-isa-avx2") and host["inductor_cache"] != hidden["inductor_cache"]
    native = "avx512_bf16" in detected_cpu_flags()
    assert host["bf16"] is (native or "amx_bf16" in detected_cpu_flags())
    assert host["vllm_dtype"] == ("bfloat16" if host["bf16"] else "float32")
    if native:
        assert host["isa"].startswith("AVX512"), host
