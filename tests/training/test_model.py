"""LoRA variants and presets: family presets, rsLoRA scaling, DoRA through the generic kernels, QLoRA's clear error."""

from __future__ import annotations

import pytest
import torch

from domainlm.data.batching import pack
from domainlm.data.encode import ChatEncoder
from domainlm.errors import ConfigError
from domainlm.training.config import LoraConfig
from domainlm.training.forward import CausalLMLoss
from domainlm.training.model import load_lora_model, load_tokenizer
from domainlm.training.presets import resolve_lora


def test_presets_fill_what_the_config_leaves_open():
    llama = resolve_lora(LoraConfig(), "llama")
    assert llama["target_modules"] == ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    assert (llama["r"], llama["alpha"], llama["dropout"]) == (16, 32.0, 0.0)
    assert resolve_lora(LoraConfig(r=8, target_modules=["q_proj"]), "qwen2")["target_modules"] == ["q_proj"]
    assert resolve_lora(LoraConfig(), "phi3")["target_modules"][0] == "qkv_proj"
    assert resolve_lora(LoraConfig(), "some_new_family")["target_modules"] == "all-linear"


def test_qlora_without_gpu_is_a_clear_error(base_model):
    lora = {**resolve_lora(LoraConfig(quantize="4bit"), "llama")}
    with pytest.raises(ConfigError, match="needs the bitsandbytes package and a CUDA GPU"):
        load_lora_model(base_model.path, lora, device=torch.device("cpu"), dtype=torch.bfloat16, seed=0)


@pytest.mark.slow
def test_rslora_and_dora_train_through_the_generic_kernels(base_model):
    lora = resolve_lora(LoraConfig(r=4, alpha=8, rslora=True, dora=True, target_modules=["q_proj", "v_proj"]),
                        "llama")
    model = load_lora_model(base_model.path, lora, device=torch.device("cpu"), dtype=torch.float32, seed=0)
    q_proj = model.get_base_model().model.layers[0].self_attn.q_proj
    assert q_proj.scaling["default"] == pytest.approx(8 / 4 ** 0.5) and q_proj.use_dora["default"]
    tokenizer = load_tokenizer(base_model.path)
    batch = pack([ChatEncoder(tokenizer, 64).encode([{"role": "user", "content": "What is LPG?"},
                                                     {"role": "assistant", "content": "Propane and butane."}])])
    loss = CausalLMLoss(model, "hf").train()(batch.input_ids, batch.position_ids, batch.targets, None,
                                              batch.cu_seqlens)
    loss.backward()
    magnitude = q_proj.lora_magnitude_vector["default"].weight
    assert torch.isfinite(loss) and magnitude.grad is not None and magnitude.grad.abs().sum() > 0
