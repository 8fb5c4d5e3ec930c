"""Atomic, resumable checkpoints: checkpoints/step-NNNNNN/ holds everything needed to continue bit-for-bit.

Contents: adapter.safetensors (LoRA weights), optimizer.pt, scheduler.pt, rng.pt (torch/numpy/python RNG of every
process, plus the accelerator device's, as tensors and plain numbers), state.json (step, tokens seen, loss history,
config fingerprint). A checkpoint is written into a temp folder, fsynced and renamed into place
(domainlm.atomic.atomic_dir), so a kill at any moment leaves either the old set or the new one; older checkpoints
beyond keep_last are removed afterwards.
The data position needs no file: the row order is a pure function of (seed, step) (domainlm.data.batching).

Loading never unpickles code: the .pt files are read with torch.load(weights_only=True), which accepts tensors,
numbers, strings and containers only, so a file planted in a shared run folder cannot run anything on resume.
"""

from __future__ import annotations

import json
import pickle
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
    """Every RNG's state in types torch.load(weights_only=True) reads back: tensors, ints, floats, lists."""
    version, words, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"python": [version, torch.tensor(words, dtype=torch.int64), gauss],
             "numpy": [name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)],
             "torch": torch.get_rng_state()}
    if device.type != "cpu":
        module = getattr(torch, device.type, None)
        if module is not None and hasattr(module, "get_rng_state"):
            state["device"] = module.get_rng_state()
    return state


def set_rng_state(state: dict, device: torch.device) -> None:
    version, words, gauss = state["python"]
    random.setstate((version, tuple(int(w) for w in words.tolist()), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
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
            "optimizer": _load_data(folder / "optimizer.pt"), "scheduler": _load_data(folder / "scheduler.pt"),
            "rng": _load_data(folder / "rng.pt")}


def _load_data(path: Path):
    """A .pt file of tensors and plain values; anything else (a pickle that would construct objects or call
    functions) is refused with the file named, never executed."""
    try:
        return torch.load(path, weights_only=True)
    except pickle.UnpicklingError as exc:
        del exc   # torch's text suggests loading it unsafely: not advice to pass on
        raise ConfigError(f"{path}: refused to load: it holds more than tensors and plain values, which a "
                          "checkpoint never does; delete that checkpoint folder, or set checkpoint.resume: never") \
            from None
