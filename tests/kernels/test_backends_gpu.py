"""The cuda adapter on a real CUDA device (skipped elsewhere). Self-contained — no shared fixtures — so it also runs
on a bare GPU machine with `pytest --noconftest -m gpu tests/kernels/test_backends_gpu.py`."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from domainlm.kernels.backends import get_backend
from domainlm.serving.engines.lora_mode import vllm_engine_args

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]
REPO = Path(__file__).resolve().parents[2]


def _python(code: str, env: dict | None = None) -> dict:
    full_env = {**{k: v for k, v in os.environ.items() if k != "DOMAINLM_BACKEND"}, "PYTHONPATH": str(REPO),
                **(env or {})}
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], check=False, capture_output=True, text=True,
                         env=full_env, cwd=REPO, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_cuda_is_selected_and_probing_leaves_cuda_uninitialised():
    data = _python("""
        import json, torch
        from domainlm.kernels.backends import select_backend
        name = select_backend().name
        print(json.dumps({"name": name, "initialised": torch.cuda.is_initialized()}))
    """)
    assert data == {"name": "cuda", "initialised": False}


def test_cuda_device_bf16_autocast_memory():
    cuda = get_backend("cuda")
    assert cuda.device(0) == torch.device("cuda", 0)
    assert cuda.supports_bf16() == torch.cuda.is_bf16_supported()
    a = torch.randn(512, 512, device=cuda.device())
    b = torch.randn(512, 512, device=cuda.device())
    with cuda.autocast(torch.bfloat16):
        out = a @ b
    cuda.synchronize()
    assert out.dtype == torch.bfloat16
    assert ((out.float() - a @ b).norm() / (a @ b).norm()).item() < 0.02
    memory = cuda.memory(0)
    assert memory["total_bytes"] == torch.cuda.mem_get_info(0)[1]
    assert 0 < memory["free_bytes"] <= memory["total_bytes"] and memory["allocated_bytes"] >= 2 * 512 * 512 * 4
    live = cuda.describe(live=True)["live"]
    assert live["device_name"] == torch.cuda.get_device_name(0)
    assert live["device_count"] == torch.cuda.device_count()


def test_cuda_launch_and_serving_environment(monkeypatch):
    cuda = get_backend("cuda")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert cuda.launch_env(nproc=1) == {"DOMAINLM_BACKEND": "cuda", "CUDA_VISIBLE_DEVICES": "0"}
    serving = cuda.serving_env(devices="0")
    assert serving["CUDA_VISIBLE_DEVICES"] == "0" and "VLLM_TARGET_DEVICE" not in serving
    assert vllm_engine_args(cuda)["dtype"] == "auto"


def test_nccl_one_rank_group_through_the_adapter():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    data = _python("""
        import json, torch, torch.distributed as dist
        from domainlm.kernels.backends import get_backend
        cuda = get_backend("cuda")
        rank, world = cuda.init_distributed()
        t = torch.full((8,), 2.0, device=cuda.device())
        dist.all_reduce(t)
        cuda.synchronize()
        print(json.dumps({"backend": dist.get_backend(), "world": world, "sum": t.sum().item()}))
        dist.destroy_process_group()
    """, env={"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": "0", "WORLD_SIZE": "1",
              "LOCAL_RANK": "0"})
    assert data == {"backend": "nccl", "world": 1, "sum": 16.0}
