"""The shipped multi-GPU accelerate configs are read by accelerate itself and turn into the plugins they promise.
(tests/test_shipped_configs.py validates them against domainlm.training.accelerate_config too.)"""

from __future__ import annotations

from pathlib import Path

import pytest

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "accelerate"


def launch_env(config: Path) -> dict:
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils import prepare_multi_gpu_env

    args = launch_command_parser().parse_args(["--config_file", str(config), "--num_processes", "2",
                                               "-m", "domainlm.cli", "train", "configs/train/medical.yaml"])
    validated = _validate_launch_command(args)
    return prepare_multi_gpu_env(validated[0] if isinstance(validated, tuple) else args)


def test_fsdp_config_becomes_an_fsdp2_plugin(monkeypatch):
    env = launch_env(CONFIGS / "fsdp.yaml")
    assert env["ACCELERATE_USE_FSDP"] == "true" and env["FSDP_VERSION"] == "2"
    for key, value in env.items():
        if key.startswith("FSDP_"):
            monkeypatch.setenv(key, value)
    from accelerate.utils import FullyShardedDataParallelPlugin

    plugin = FullyShardedDataParallelPlugin()
    assert plugin.fsdp_version == 2 and plugin.reshard_after_forward is True
    assert plugin.auto_wrap_policy.__name__ == "transformer_auto_wrap_policy"


@pytest.mark.parametrize("name, kind", [("fsdp.yaml", "FSDP"), ("deepspeed_zero2.yaml", "DEEPSPEED")])
def test_accelerate_parses_the_shipped_file(name, kind):
    from accelerate.commands.config.config_args import ClusterConfig

    config = ClusterConfig.from_yaml_file(str(CONFIGS / name))
    assert config.distributed_type == kind and config.mixed_precision == "no"
    if kind == "DEEPSPEED":
        assert config.deepspeed_config["zero_stage"] == 2


def test_sharded_strategies_switch_to_generic_kernels(base_model):
    import torch

    from domainlm.training.forward import choose_kernels
    from domainlm.training.model import load_lora_model

    lora = {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"], "rslora": False,
            "dora": False, "quantize": "none"}
    model = load_lora_model(base_model.path, lora, device=torch.device("cpu"), dtype=torch.bfloat16, seed=0)
    assert choose_kernels("auto", model, lora, "MULTI_CPU") == ("fused", None)
    kernels, why = choose_kernels("auto", model, lora, "FSDP")
    assert kernels == "hf" and "FSDP" in why
    assert choose_kernels("auto", model, {**lora, "dora": True}, "NO")[0] == "hf"
