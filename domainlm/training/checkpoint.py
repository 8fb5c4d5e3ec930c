"""Atomic, resumable checkpoints: checkpoints/step-NNNNNN/ holds everything needed to continue bit-for-bit.

Contents: adapter.safetensors (LoRA weights), optimizer.pt, scheduler.pt, rng.pt (torch/numpy/python RNG of every
process, plus the accelerator device's), state.json (step, tokens seen, loss history, config fingerprint). A
checkpoint is written into a temp folder, fsynced and renamed into place (domainlm.hashing.atomic_dir), so a kill at
any moment leaves either the old set or the new one; older checkpoints beyond keep_last are removed afterwards.
The data position needs no file: the row order is a pure function of (seed, step) (domainlm.data.batching).
"""

from __future__ import annotations

import json
import random
import re
import shutil
from pathlib import Path

import numpy as np
import torch

from domainlm.errors import ConfigError
from domainlm.atomic import atomic_dir

PATTERN = re.compile(r"^step-(\d{6,})$")


def checkpoints_dir(run_dir: Path) -> Path:
    return run_dir / "checkpoints"


def list_checkpoints(run_dir: Path) -> list[Path]:
    folder = checkpoints_dir(run_dir)
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if p.is_dir() and PATTERN.match(p.name) and (p / "state.json").is_file()]
    return sorted(found, key=lambda p: int(PATTERN.match(p.name).group(1)))


def latest(run_dir: Path) -> Path | None:
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def rng_state(device: torch.device) -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if device.type != "cpu":
        module = getattr(torch, device.type, None)
        if module is not None and hasattr(module, "get_rng_state"):
            state["device"] = module.get_rng_state()
    return state


def set_rng_state(state: dict, device: torch.device) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "device" in state and device.type != "cpu":
        getattr(torch, device.type).set_rng_state(state["device"])


def remove_partial(run_dir: Path) -> int:
    """Delete temp folders a killed save left behind (they never became checkpoints); returns how many."""
    folder = checkpoints_dir(run_dir)
    stale = [p for p in folder.glob(".step-*") if p.is_dir()] if folder.is_dir() else []
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)
    return len(stale)


def save(run_dir: Path, step: int, *, adapter: dict, optimizer: dict, scheduler: dict, rng: list[dict],
         state: dict, keep_last: int) -> Path:
    from safetensors.torch import save_file

    final = checkpoints_dir(run_dir) / f"step-{step:06d}"
    with atomic_dir(final) as tmp:
        save_file({k: v.detach().contiguous().cpu() for k, v in adapter.items()}, str(tmp / "adapter.safetensors"))
        torch.save(optimizer, tmp / "optimizer.pt")
        torch.save(scheduler, tmp / "scheduler.pt")
        torch.save(rng, tmp / "rng.pt")
        (tmp / "state.json").write_text(json.dumps({"step": step, **state}, indent=2))
    for old in list_checkpoints(run_dir)[:-keep_last]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load(folder: Path, fingerprint: str) -> dict:
    """Everything `save` wrote; refuses a checkpoint made by a different training config."""
    from safetensors.torch import load_file

    state = json.loads((folder / "state.json").read_text())
    if state.get("fingerprint") != fingerprint:
        raise ConfigError(f"{folder} was written by a different training config (fingerprint "
                          f"{state.get('fingerprint', '?')[:12]} ≠ {fingerprint[:12]}): resume with the same config, "
                          "or set checkpoint.resume: never / a new output_dir")
    return {"state": state, "adapter": load_file(str(folder / "adapter.safetensors")),
            "optimizer": torch.load(folder / "optimizer.pt", weights_only=False),
            "scheduler": torch.load(folder / "scheduler.pt", weights_only=False),
            "rng": torch.load(folder / "rng.pt", weights_only=False)}
