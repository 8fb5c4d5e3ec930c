"""The wheel is complete: built from this tree, installed into a fresh virtual environment, its `domainlm --help`,
`domainlm doctor` and `python -m domainlm` run from there, on the package files in that environment (console
static files, authored vertical data, kernels' C++ sources and the verified_on record travel as package data)."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parent.parent


def test_wheel_installs_into_a_fresh_venv_and_its_cli_runs_from_there(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path / "dist"), str(REPO)], check=True, capture_output=True, timeout=300)
    wheel = next((tmp_path / "dist").glob("domainlm-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in ("domainlm/__main__.py", "domainlm/serving/console/static/index.html",
                   "domainlm/verticals/marine/vertical.yaml", "domainlm/verticals/petrochem/data/authored.jsonl",
                   "domainlm/verticals/marine/safety/prompts.jsonl",
                   "domainlm/kernels/ops/cpu_attention_kernel.cpp", "domainlm/kernels/ops/bf16_avx512.h",
                   "domainlm/kernels/ops/cpu_lora_kernel.cpp", "domainlm/kernels/backends/verified_on.json",
                   "domainlm/state/migrations/gateway/env.py",   # the state migrations ship with the package
                   "domainlm/state/migrations/gateway/versions/0001_gateway_tables.py",
                   "domainlm/state/migrations/registry/versions/0001_registry_tables.py"):
        assert needed in names, f"{needed} is missing from {wheel.name}"
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "domainlm_cpu = domainlm.kernels.ops.vllm_plugin:cpu_platform" in \
        zipfile.ZipFile(wheel).read(entry_points).decode()

    # the venv sees the dependencies already installed here (torch, vLLM …), but domainlm only from the wheel
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True, timeout=120)
    python, cli = venv / "bin" / "python", venv / "bin" / "domainlm"
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], check=True,
                   capture_output=True, timeout=300)
    where = subprocess.run([str(python), "-c", "import domainlm; print(domainlm.__file__)"], cwd=tmp_path,
                           capture_output=True, text=True, check=True, timeout=60).stdout.strip()
    assert Path(where).is_relative_to(venv), f"domainlm imported from {where}, not the venv"

    helped = subprocess.run([str(cli), "--help"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert helped.returncode == 0 and "quickstart" in helped.stdout, helped.stderr[-2000:]
    doctor = subprocess.run([str(cli), "doctor", "--json"], cwd=tmp_path, capture_output=True, text=True,
                            timeout=300)
    assert doctor.returncode == 0, doctor.stderr[-2000:]
    assert "Traceback" not in doctor.stderr
    assert json.loads(doctor.stdout)["selected"]["name"] == "cpu"
    module = subprocess.run([str(python), "-m", "domainlm", "--help"], cwd=tmp_path, capture_output=True, text=True,
                            timeout=120)
    assert module.returncode == 0 and module.stdout == helped.stdout
