"""Where domainlm keeps its state: one home folder (caches, registry, keys) and the shared data folder."""

from __future__ import annotations

import os
from pathlib import Path

from domainlm.errors import DataError

REPO_ROOT = Path(__file__).resolve().parent.parent


def home() -> Path:
    """DOMAINLM_HOME (default ~/.cache/domainlm): models, registry, eval cache, gateway database."""
    path = Path(os.environ.get("DOMAINLM_HOME", Path.home() / ".cache" / "domainlm")).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def models_dir() -> Path:
    return home() / "models"


def registry_dir() -> Path:
    return Path(os.environ.get("DOMAINLM_REGISTRY", home() / "registry")).expanduser()


def data_root() -> Path:
    """DOMAINLM_DATA, else ../shared/data beside the checkout (where tests and CI find the real benchmarks)."""
    env = os.environ.get("DOMAINLM_DATA")
    path = Path(env).expanduser() if env else REPO_ROOT.parent / "shared" / "data"
    if not path.is_dir():
        raise DataError(
            f"domain data folder not found: {path}. Point DOMAINLM_DATA at the folder that holds "
            "MANIFEST.jsonl and the dataset folders (medquad/, medmcqa_medagents/, ...)."
        )
    return path


def dataset_dir(name: str) -> Path:
    """One dataset folder under the data root, with an error naming the folder expected."""
    path = data_root() / name
    if not path.is_dir():
        raise DataError(f"dataset folder not found: {path} (expected dataset '{name}' under {data_root()})")
    return path
