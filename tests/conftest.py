"""Shared fixtures. Each area keeps its own fixtures in tests/fixtures/<area>.py, loaded here as plugins."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import domainlm  # noqa: F401  (first: DOMAINLM_CPU_FLAGS_OFF caps torch's ISA before anything imports torch)

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "test-artifacts"  # screenshots, reports: kept after the run (gitignored)

os.environ.setdefault("DOMAINLM_PROGRESS", "off")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")



def pytest_report_header(config):
    from domainlm.kernels.host import FLAGS_OFF_ENV, cpu_class, hidden_flag_patterns

    hidden = f" ({FLAGS_OFF_ENV} hides {', '.join(hidden_flag_patterns())})" if hidden_flag_patterns() else ""
    return f"domainlm CPU class: {cpu_class()}{hidden}"


def pytest_collection_modifyitems(config, items):
    """`@pytest.mark.avx512_bf16`: the test needs native bf16 on the CPU (our compiled kernels); skipped elsewhere
    with the reason computed from this host, so an AVX2-only run says which tests it could not run and why."""
    from domainlm.kernels.host import FLAGS_OFF_ENV, cpu_flags, detected_cpu_flags

    if "avx512_bf16" in cpu_flags():
        return
    why = (f"needs AVX512-BF16: this CPU has it, but {FLAGS_OFF_ENV} hides it" if "avx512_bf16" in
           detected_cpu_flags() else "needs AVX512-BF16: this CPU has no avx512_bf16 flag")
    for item in items:
        if item.get_closest_marker("avx512_bf16"):
            item.add_marker(pytest.mark.skip(reason=why))


pytest_plugins = sorted(
    f"tests.fixtures.{p.stem}" for p in (REPO / "tests" / "fixtures").glob("*.py") if p.stem != "__init__"
)


@pytest.fixture
def one_torch_thread():
    """torch on one thread: on a shared 2-core machine a second OpenMP thread that gets descheduled stalls every
    parallel region (measured 10× slower steps), and small test batches gain nothing from two."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def base_model():
    """The embedded default base model, prepared by `make setup` (prepared here if a test machine skipped it)."""
    from domainlm.models import resolve_base

    return resolve_base(prepare_if_missing=True)


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture
def isolated_home(tmp_path, monkeypatch, base_model):
    """A throwaway DOMAINLM_HOME/registry that still sees the prepared embedded model."""
    home = tmp_path / "home"
    (home / "models").mkdir(parents=True)
    (home / "models" / base_model.path.name).symlink_to(base_model.path)
    # replay answers (training/replay.py) are a pure function of base weights and pool: one machine-wide copy, so
    # each test that trains with a replay mixture does not start a vLLM engine to regenerate them
    shared_replay = Path(os.environ.get("DOMAINLM_HOME", Path.home() / ".cache" / "domainlm")).expanduser() \
        / "test-fixtures" / "replay"
    shared_replay.mkdir(parents=True, exist_ok=True)
    (home / "replay").symlink_to(shared_replay)
    monkeypatch.setenv("DOMAINLM_HOME", str(home))
    monkeypatch.setenv("DOMAINLM_REGISTRY", str(home / "registry"))
    return home
