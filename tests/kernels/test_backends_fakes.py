"""Adapters for hardware we do not have, driven through FAKE vendor modules (tests/fixtures/backends.py) that expose
only the documented API: detection order (the torch_npu shim scenario included), no import while probing, every
call routed to documented names, LoRA serving fallbacks, and vLLM plugin discovery through a temporary dist-info."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from domainlm.kernels.backends import BackendError, get_backend, plugins, select_backend
from tests.fixtures.backends import GIB

REPO = Path(__file__).resolve().parents[2]
NAMESPACES = [("npu", "torch_npu"), ("mlu", "torch_mlu"), ("musa", "torch_musa"), ("gcu", "torch_gcu"), ("xpu", None)]


@pytest.mark.parametrize(("name", "package"), NAMESPACES, ids=[n for n, _ in NAMESPACES])
def test_vendor_namespace_adapter_on_fake_stack(fake_vendors, name, package):
    fake_vendors.namespace(package, name)
    if name == "gcu":
        fake_vendors.accelerator()  # torch_gcu documents no synchronize/memory: the adapter uses torch.accelerator
    backend = get_backend(name)

    assert backend.probe()
    if package:  # found by find_spec, not imported, no device function called
        assert fake_vendors.imported == [] and fake_vendors.calls == [] and package not in sys.modules
    else:
        assert fake_vendors.calls == ["torch.xpu.is_available"]
    assert select_backend() is backend

    assert backend.device_count() == 2
    assert backend.memory(1) == {"device": f"{name}:1", "total_bytes": 64 * GIB, "free_bytes": 48 * GIB,
                                 "allocated_bytes": 3 * GIB}
    if name != "gcu":  # gcu documents no bf16 query: a bf16 matmul on the device decides, which needs a real GCU
        assert backend.supports_bf16() is True
    backend.synchronize()
    if package:
        assert fake_vendors.imported == [package]  # imported on the chosen path, once
    live = backend.describe(live=True)["live"]
    assert live["device_count"] == 2 and live["device_name"] == f"FAKE {name} device (test double)"
    env = backend.launch_env(nproc=2)
    assert env == {"DOMAINLM_BACKEND": name, backend.visible_devices_env: "0,1"}
    if name == "xpu":
        assert backend.device(1) == torch.device("xpu", 1)
    if backend.accelerate_detector:  # accelerate, asked the same question on the same stack, agrees
        module, func = backend.accelerate_detector.split(":")
        detector = getattr(importlib.import_module(module), func)
        assert getattr(detector, "__wrapped__", detector)() is True  # bypass accelerate's lru_cache


def test_fake_vendor_modules_catch_undocumented_access(fake_vendors):
    npu = fake_vendors.namespace("torch_npu", "npu")
    importlib.import_module("torch_npu")
    with pytest.raises(AttributeError, match="no documented attribute 'current_stream'"):
        npu.current_stream()
    assert getattr(npu, "empty_cache", None) is None  # swallowed by the caller, but still recorded
    assert fake_vendors.violations == ["torch.npu.current_stream", "torch.npu.empty_cache"]
    fake_vendors.violations.clear()  # this test provoked them on purpose; the fixture would fail it otherwise


def test_launch_env_keeps_the_callers_device_selection(monkeypatch):
    npu = get_backend("npu")
    monkeypatch.setenv("ASCEND_RT_VISIBLE_DEVICES", "4,5")
    assert npu.launch_env(nproc=2)["ASCEND_RT_VISIBLE_DEVICES"] == "4,5"
    assert npu.launch_env(nproc=2, devices="6,7")["ASCEND_RT_VISIBLE_DEVICES"] == "6,7"
    with pytest.raises(BackendError):
        npu.launch_env(nproc=0)


def test_shim_scenario_torch_npu_wins_over_a_cuda_that_claims_to_be_available(fake_vendors, monkeypatch):
    fake_vendors.namespace("torch_npu", "npu")
    # What torch_npu.contrib.transfer_to_npu does to a CUDA-less torch: torch.cuda now says a device is there.
    monkeypatch.setattr(torch.version, "cuda", "12.4")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert get_backend("cuda").probe()  # asked first, CUDA would win — and be wrong
    assert select_backend().name == "npu"
    assert fake_vendors.imported == []  # selection imported nothing
    monkeypatch.setenv("DOMAINLM_BACKEND", "cuda")
    assert select_backend().name == "cuda"  # an explicit choice still wins


def _tool(folder: Path, name: str) -> None:
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(0o755)


CUDA_ALIKES = ["dcu", "corex", "maca", "kunlun"]


@pytest.mark.parametrize("name", CUDA_ALIKES)
def test_cuda_alike_detected_by_marker_before_rocm_and_cuda(fake_vendors, monkeypatch, tmp_path, name):
    fake_vendors.cuda()  # the vendor stack answers through torch.cuda (FAKE)
    monkeypatch.setattr(torch.version, "cuda", "11.6")
    bin_dir = tmp_path / "bin"
    if name == "dcu":
        monkeypatch.setattr(torch.version, "cuda", None)
        monkeypatch.setattr(torch.version, "hip", "5.7.24164-dtk")
        assert select_backend().name == "rocm"  # without a DTK marker a HIP build is plain ROCm
        fake_vendors.calls.clear()  # the rocm probe asked torch.cuda.is_available(); markers ask nothing
        _tool(bin_dir, "hy-smi")
    elif name == "corex":
        _tool(bin_dir, "ixsmi")
    elif name == "maca":
        monkeypatch.setattr(torch.version, "maca", "3.8.1.0", raising=False)
    else:
        fake_vendors.package("torch_xmlir")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")

    backend = select_backend()
    assert backend.name == name and fake_vendors.calls == []
    assert backend.device_count() == 2 and backend.supports_bf16() is True
    assert backend.memory(0)["free_bytes"] == 48 * GIB
    backend.synchronize()
    assert backend.device(0) == torch.device("cuda", 0)
    assert fake_vendors.imported == (["torch_xmlir"] if name == "kunlun" else [])
    assert set(fake_vendors.calls) <= {f"torch.cuda.{n}" for n in backend.device_api}


def test_privateuse1_device_name_is_registered_by_the_vendor_import():
    """torch_npu renames PyTorch's PrivateUse1 device to 'npu' on import; device() must go through that import.
    In a subprocess, because PyTorch allows that rename once per process."""
    code = textwrap.dedent("""
        import pytest, torch
        from tests.fixtures.backends import FakeVendors
        from domainlm.kernels.backends import get_backend
        mp = pytest.MonkeyPatch()
        fakes = FakeVendors(mp)
        module = fakes.namespace("torch_npu", "npu")
        def register():  # what the real torch_npu does on import
            torch.utils.rename_privateuse1_backend("npu")
            torch.npu = module
        fakes.packages["torch_npu"] = register
        device = get_backend("npu").device(1)
        assert fakes.violations == [], fakes.violations
        print("DEVICE", device, fakes.imported)
    """)
    out = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, cwd=REPO,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "DEVICE npu:1 ['torch_npu']" in out.stdout


def _fake_plugin_distribution(root: Path) -> None:
    """A FAKE vllm-ascend install: dist-info with the real entry points, and a package vLLM can load."""
    dist = root / "vllm_ascend-0.0.0+fake.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: vllm-ascend\nVersion: 0.0.0+fake\n")
    (dist / "top_level.txt").write_text("vllm_ascend\n")
    (dist / "entry_points.txt").write_text(
        "[vllm.platform_plugins]\nascend = vllm_ascend:register\n\n"
        "[vllm.general_plugins]\nascend_enhanced_model = vllm_ascend:register_model\n")
    package = root / "vllm_ascend"
    package.mkdir()
    (package / "__init__.py").write_text(
        '"""FAKE vllm-ascend (test double)."""\n'
        "def register():\n    return None  # no NPU here: the platform declines to activate\n\n"
        "def register_model():\n    pass\n")


@pytest.mark.slow
def test_vllm_plugin_discovery_through_a_temporary_dist_info(monkeypatch, tmp_path):
    _fake_plugin_distribution(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    found = {(ep.group, ep.name, ep.distribution) for ep in plugins.entry_points_of_module("vllm_ascend")}
    assert found == {("vllm.platform_plugins", "ascend", "vllm-ascend"),
                     ("vllm.general_plugins", "ascend_enhanced_model", "vllm-ascend")}
    npu_env = get_backend("npu").serving_env()
    assert npu_env["VLLM_PLUGINS"] == "ascend,ascend_enhanced_model"
    assert get_backend("npu").describe()["vllm_plugin"]["installed"] == "vllm-ascend 0.0.0+fake"
    # a foreign platform plugin is installed: the CPU keeps domainlm's CPU platform and vLLM's own plugins only
    cpu_env = get_backend("cpu").serving_env()
    own = sorted(ep.name for ep in plugins.entry_points_of_module("vllm"))
    assert cpu_env["VLLM_PLUGINS"] == ",".join([plugins.DOMAINLM_CPU_PLATFORM_PLUGIN, *own])

    # vLLM's own loader, in a fresh process, sees the same names and obeys the filter we set.
    code = textwrap.dedent("""
        import json, os, sys
        from vllm.plugins import load_plugins_by_group
        result = {}
        for label, value in json.loads(sys.argv[1]).items():
            os.environ["VLLM_PLUGINS"] = value
            result[label] = {g: sorted(load_plugins_by_group(g)) for g in
                             ("vllm.platform_plugins", "vllm.general_plugins")}
        print("PLUGINS " + json.dumps(result))
    """)
    filters = {"npu": npu_env["VLLM_PLUGINS"], "cpu": cpu_env["VLLM_PLUGINS"]}
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO)])}
    out = subprocess.run([sys.executable, "-c", code, json.dumps(filters)], check=False, capture_output=True,
                         text=True, env=env, timeout=180)
    assert out.returncode == 0, out.stderr[-2000:]
    loaded = json.loads(next(line for line in out.stdout.splitlines() if line.startswith("PLUGINS "))[8:])
    assert loaded["npu"] == {"vllm.platform_plugins": ["ascend"], "vllm.general_plugins": ["ascend_enhanced_model"]}
    assert loaded["cpu"] == {"vllm.platform_plugins": [plugins.DOMAINLM_CPU_PLATFORM_PLUGIN],
                             "vllm.general_plugins": own}
