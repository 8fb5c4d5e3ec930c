"""LoRA SFT on accelerate: `train(config) -> artifact folder`, checkpoints and resume, merge/export.

    from domainlm.training import TrainConfig, load_train_config, train
    artifact_dir = train(load_train_config("configs/train/medical.yaml", ["train.max_steps=20"]))
"""

from __future__ import annotations

__all__ = ["TrainConfig", "load_train_config", "train"]


def __getattr__(name: str):   # lazy: `domainlm --help` and config validation never import torch
    if name == "train":
        from domainlm.training.loop import train

        return train
    if name == "TrainConfig":
        from domainlm.training.config import TrainConfig

        return TrainConfig
    if name == "load_train_config":
        from domainlm.training.config import load_train_config

        return load_train_config
    raise AttributeError(f"module 'domainlm.training' has no attribute {name!r}")
