"""The accelerator contract: every adapter declares every field with valid, documented values; CPU runs for real
(device, autocast, memory, a 2-process gloo all-reduce through the adapter); docs, CLI and verified_on agree."""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from domainlm.kernels.host import detected_cpu_flags, cpu_flags
from domainlm.kernels.backends import BackendError, all_backends, get_backend, select_backend, selection_order, verified
from domainlm.kernels.backends.spec import DIST_BACKENDS, LORA_SUPPORT
from tests.fixtures.backends import DOCUMENTED_API

REPO = Path(__file__).resolve().parents[2]
BACKENDS = all_backends()
IDS = [b.name for b in BACKENDS]


def _vllm_source(relative: str) -> str:
    root = Path(importlib.util.find_spec("vllm").submodule_search_locations[0])
    return (root / relative).read_text(encoding="utf-8")


@pytest.mark.parametrize("backend", BACKENDS, ids=IDS)
def test_every_adapter_declares_the_contract(backend):
    assert re.fullmatch(r"[a-z][a-z0-9]*", backend.name)
    assert backend.title and backend.family in ("builtin", "namespace", "cuda-alike")
    assert backend.dist_backend in DIST_BACKENDS
    surface = f"torch.{backend.device_type}"
    if backend.device_type == "cpu":
        assert all(callable(getattr(torch.cpu, name)) for name in backend.device_api)
        assert backend.visible_devices_env is None
    else:
        # Only documented vendor API: the same list the fake vendor modules enforce.
        assert set(backend.device_api) <= set(DOCUMENTED_API[surface]), surface
        assert re.fullmatch(r"[A-Z][A-Z_]+", backend.visible_devices_env)
    for module in backend.vendor_modules:
        assert module in DOCUMENTED_API, f"{module} has no documented API list in tests/fixtures/backends.py"
    if backend.accelerate_detector:
        module, func = backend.accelerate_detector.split(":")
        assert callable(getattr(importlib.import_module(module), func)), backend.accelerate_detector
    plugin = backend.vllm_plugin
    assert plugin.lora_support in LORA_SUPPORT and plugin.package and plugin.source
    if plugin.entry_point:
        # the vendor's package holds both the entry point and the platform; domainlm's own CPU platform lives here
        target = plugin.entry_point.split("=", 1)[1].strip()
        home = "domainlm" if target.startswith("domainlm.") else plugin.module
        assert target.split(":")[0].split(".")[0] == home and plugin.platform_qualname.startswith(home + ".")
    else:
        # Built into vLLM: the platform class must exist in the installed vLLM source (read, not imported).
        module, _, cls = plugin.platform_qualname.rpartition(".")
        assert module.startswith("vllm.platforms.")
        source = _vllm_source(module.removeprefix("vllm.").replace(".", "/") + ".py")
        assert re.search(rf"^(class {cls}\b|{cls} = )", source, flags=re.MULTILINE), plugin.platform_qualname
    assert backend.vendor_api.startswith("https://")
    # verified_on: exactly this backend's records from verified_on.json, each one a valid device-run record
    known = {b.name for b in BACKENDS}
    on_file = json.loads(verified.VERIFIED_FILE.read_text(encoding="utf-8")).get(backend.name, [])
    assert list(backend.verified_on) == on_file
    for record in backend.verified_on:
        assert record["backend"] == backend.name
        verified.validate_record(record, known)


def test_selection_order_is_the_documented_one():
    assert selection_order() == ("npu", "mlu", "musa", "gcu", "xpu", "dcu", "corex", "maca", "kunlun",
                                 "rocm", "cuda", "cpu")
    assert IDS == list(selection_order())
    families = [get_backend(n).family for n in selection_order()]
    assert families[:5] == ["namespace"] * 5 and families[5:9] == ["cuda-alike"] * 4


def test_explicit_backend_errors_are_one_clear_line(monkeypatch):
    with pytest.raises(BackendError, match="unknown backend 'tpu9'"):
        get_backend("tpu9")
    monkeypatch.setenv("DOMAINLM_BACKEND", "tpu9")
    with pytest.raises(BackendError, match="DOMAINLM_BACKEND='tpu9' is not a backend"):
        select_backend()
    monkeypatch.setenv("DOMAINLM_BACKEND", "npu")
    with pytest.raises(BackendError, match="npu but that backend is not usable here: torch_npu not installed"):
        select_backend()
    monkeypatch.setenv("DOMAINLM_BACKEND", "cpu")
    assert select_backend().name == "cpu"


def test_verified_on_is_data_from_device_runs_only():
    # No field to set it in code; the file holds only records the device check's validator accepts.
    assert "verified_on" not in {f.name for f in dataclasses.fields(type(BACKENDS[0]))}
    known = set(IDS)
    for name, records in json.loads(verified.VERIFIED_FILE.read_text()).items():
        for record in records:
            assert record["backend"] == name
            verified.validate_record(record, known)


def test_verified_record_validation_refuses_what_a_run_did_not_show(tmp_path):
    good = {"backend": "cuda", "hardware": "NVIDIA H200", "driver": "580", "torch": "2.11", "date": "2026-11-28",
            "script": "scripts/device_check.sh",
            "checks": {"detection": {"status": "pass"}, "vllm_generate": {"status": "skip", "reason": "no vllm"}},
            "passed": ["detection"]}
    verified.validate_record(good, set(IDS))
    bad_cases = [
        ({"checks": {"detection": {"status": "fail"}}, "passed": []}, "detection did not pass"),
        ({"passed": ["detection", "vllm_generate"]}, "does not match"),
        ({"checks": {"detection": {"status": "pass"}, "x": {"status": "skip"}}}, "must say why"),
        ({"hardware": ""}, "hardware must name"),
        ({"backend": "tpu9"}, "unknown backend"),
    ]
    for change, message in bad_cases:
        with pytest.raises(Exception, match=message):
            verified.validate_record({**good, **change}, set(IDS))
    target = tmp_path / "verified_on.json"
    verified.add(good, set(IDS), path=target)
    assert json.loads(target.read_text()) == {"cuda": [good]}


def hidden_flags() -> set[str]:
    return set(detected_cpu_flags() - cpu_flags())


def test_cpu_backend_for_real(monkeypatch):
    monkeypatch.delenv("DOMAINLM_BACKEND", raising=False)
    monkeypatch.delenv("DOMAINLM_LORA_SERVING", raising=False)
    backend = select_backend()
    assert backend.name == "cpu" and backend.probe()
    assert backend.device(0) == torch.device("cpu")
    a, b = torch.randn(64, 64), torch.randn(64, 64)
    with backend.autocast(torch.bfloat16):
        out = a @ b
    assert out.dtype == torch.bfloat16
    assert ((out.float() - a @ b).norm() / (a @ b).norm()) < 0.02
    backend.synchronize()
    cpuinfo = set(Path("/proc/cpuinfo").read_text().split()) - hidden_flags()   # less what the switch hides
    assert backend.supports_bf16() == bool({"avx512_bf16", "amx_bf16"} & cpuinfo)
    memory = backend.memory()
    assert 0 < memory["free_bytes"] <= memory["total_bytes"]
    assert memory["total_bytes"] == os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")

    env = backend.launch_env(nproc=2)
    assert env["DOMAINLM_BACKEND"] == "cpu" and env["ACCELERATE_USE_CPU"] == "true"
    assert env["CUDA_VISIBLE_DEVICES"] == "" and int(env["OMP_NUM_THREADS"]) >= 1
    serving = backend.serving_env()
    assert "VLLM_TARGET_DEVICE" not in serving   # an explicit CPU target would make vLLM skip domainlm's platform
    assert serving["VLLM_PLUGINS"].split(",")[0] == "domainlm_cpu"
    report = backend.describe(live=True)
    json.dumps(report)
    assert report["probe"] == {"detected": True, "reason": "always available"}
    assert report["live"]["device_count"] == 1 and report["live"]["bf16"] == backend.supports_bf16()


def test_probing_imports_no_vendor_module_and_initialises_nothing():
    code = textwrap.dedent("""
        import sys, json
        from domainlm.kernels.backends import all_backends, select_backend
        chosen = select_backend().name
        results = {b.name: b.probe() for b in all_backends()}
        import torch
        vendor = [m for b in all_backends() for m in b.vendor_modules] + ["vllm", "vllm_ascend", "accelerate"]
        print(json.dumps({"chosen": chosen, "results": results,
                          "imported": [m for m in vendor if m in sys.modules],
                          "cuda_initialized": torch.cuda.is_initialized()}))
    """)
    env = {k: v for k, v in os.environ.items() if k != "DOMAINLM_BACKEND"}
    out = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, env=env, cwd=REPO,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout.strip().splitlines()[-1])
    assert data["chosen"] == "cpu" and data["results"]["cpu"] is True
    assert data["imported"] == [] and data["cuda_initialized"] is False


WORKER = """
import torch, torch.distributed as dist
from domainlm.kernels.backends import select_backend
backend = select_backend()
rank, world = backend.init_distributed()
value = torch.tensor([float(rank + 1)], device=backend.device())
dist.all_reduce(value)
print(f"RANK {rank}/{world} backend={dist.get_backend()} sum={value.item()}", flush=True)
dist.destroy_process_group()
"""


@pytest.mark.slow
def test_two_process_gloo_all_reduce_through_the_adapter(tmp_path):
    backend = get_backend("cpu")
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = {**os.environ, **backend.launch_env(nproc=2), "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script)]
    out = subprocess.run(cmd, check=False, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=180)
    assert out.returncode == 0, out.stderr[-3000:]
    # Both ranks share one stdout, so their lines can interleave: match records, not lines.
    found = sorted(re.findall(r"RANK \d/\d backend=\w+ sum=[\d.]+", out.stdout))
    assert found == ["RANK 0/2 backend=gloo sum=3.0", "RANK 1/2 backend=gloo sum=3.0"]


def _docs_matrix() -> dict[str, list[str]]:
    text = (REPO / "docs" / "backends.md").read_text()
    section = text.split("## Capability matrix", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| ---")]
    cells = [[c.strip() for c in row.strip("|").split("|")] for row in rows]
    return {row[0]: row for row in cells[1:]}


def test_docs_matrix_matches_the_adapters():
    documented = _docs_matrix()
    assert list(documented) == IDS
    for b in BACKENDS:
        p = b.vllm_plugin
        expected = [b.name, b.device_type, ", ".join(b.vendor_modules) or "-", b.dist_backend,
                    b.visible_devices_env or "-", (b.accelerate_detector or "-").rsplit(":", 1)[-1], p.package,
                    p.entry_point or "built in", p.platform_qualname, p.lora_support]
        assert documented[b.name] == expected, b.name


def test_doctor_command_table_and_json(monkeypatch, capsys):
    monkeypatch.delenv("DOMAINLM_BACKEND", raising=False)
    env = {k: v for k, v in os.environ.items() if k != "DOMAINLM_BACKEND"}
    table = subprocess.run([sys.executable, "-m", "domainlm.cli", "doctor"], check=False, capture_output=True,
                           text=True, env=env, cwd=REPO, timeout=120)
    assert table.returncode == 0, table.stderr
    assert table.stdout.startswith("backend: cpu")
    assert "LoRA serving: vllm-lora" in table.stdout   # serving's policy for this backend, added by the command
    assert all(re.search(rf"^{name}\s", table.stdout, flags=re.MULTILINE) for name in IDS)

    from domainlm.cli import main

    assert main(["doctor", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["selected"]["name"] == "cpu" and data["selected"]["live"]["device_count"] == 1
    assert [b["name"] for b in data["backends"]] == IDS
    assert data["versions"]["torch"] == torch.__version__
    monkeypatch.setenv("DOMAINLM_BACKEND", "npu")
    assert main(["doctor"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.strip() == ("domainlm: error: DOMAINLM_BACKEND=npu but that backend is not usable here: "
                           "torch_npu not installed")
