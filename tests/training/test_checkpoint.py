"""Checkpoints resume exactly and never execute what a file in a shared run folder could plant."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from domainlm.errors import ConfigError
from domainlm.training import checkpoint


def _draws():
    return random.random(), float(np.random.rand()), float(torch.rand(1))


def test_rng_state_round_trips_through_a_tensors_only_file(tmp_path):
    random.seed(3)
    np.random.seed(4)
    torch.manual_seed(5)
    torch.save([checkpoint.rng_state(torch.device("cpu"))], tmp_path / "rng.pt")
    expected = _draws()
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    checkpoint.set_rng_state(checkpoint._load_data(tmp_path / "rng.pt")[0], torch.device("cpu"))
    assert _draws() == expected


class _Planted:
    """What an attacker would drop into optimizer.pt: unpickling it calls a function."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_planted_pickle_is_refused_and_never_runs(tmp_path):
    run = tmp_path / "run"
    adapter = {"w": torch.zeros(2, 2)}
    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.AdamW(model.parameters())
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    folder = checkpoint.save(run, 2, adapter=adapter, optimizer=optimizer.state_dict(),
                             scheduler=scheduler.state_dict(), rng=[checkpoint.rng_state(torch.device("cpu"))],
                             state={"fingerprint": "f" * 64}, keep_last=1)
    loaded = checkpoint.load(folder, "f" * 64)          # the real thing loads under weights_only
    assert loaded["state"]["step"] == 2 and set(loaded["optimizer"]) == {"state", "param_groups"}

    marker = tmp_path / "planted-ran"
    torch.save({"state": _Planted(marker), "param_groups": []}, folder / "optimizer.pt")
    with pytest.raises(ConfigError, match=r"optimizer\.pt: refused to load"):
        checkpoint.load(folder, "f" * 64)
    assert not marker.exists()
