"""Shared fixtures. Each area keeps its own fixtures in tests/fixtures/<area>.py, loaded here as plugins."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "test-artifacts"  # screenshots, reports: kept after the run (gitignored)

os.environ.setdefault("DOMAINLM_PROGRESS", "off")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

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
    monkeypatch.setenv("DOMAINLM_HOME", str(home))
    monkeypatch.setenv("DOMAINLM_REGISTRY", str(home / "registry"))
    return home
