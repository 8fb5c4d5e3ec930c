"""LoRA presets per model family (config.model_type): which modules to adapt, and the default r/alpha/dropout.

Targets are every linear projection of attention and MLP ("all-linear"): the QLoRA paper found adapting all of
them is what matches full fine-tuning, where attention-only LoRA falls short. Dropout defaults to 0: on CPU one
dropout mask costs one RNG draw per input element (about as much as the LoRA GEMMs); set lora.dropout to use it.
"""

from __future__ import annotations

from dataclasses import dataclass

from domainlm.errors import ConfigError

LLAMA_LIKE = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class LoraPreset:
    targets: tuple[str, ...]
    r: int = 16
    alpha: float = 32.0
    dropout: float = 0.0


PRESETS: dict[str, LoraPreset] = {
    **{family: LoraPreset(LLAMA_LIKE) for family in (
        "llama", "mistral", "mixtral", "qwen2", "qwen2_moe", "qwen3", "qwen3_moe", "gemma", "gemma2", "gemma3_text",
        "olmo2", "granite", "deepseek_v3", "yi", "baichuan_m1", "internlm3", "minicpm")},
    "phi3": LoraPreset(("qkv_proj", "o_proj", "gate_up_proj", "down_proj")),
    "gpt2": LoraPreset(("c_attn", "c_proj", "c_fc")),
    "falcon": LoraPreset(("query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h")),
    "chatglm": LoraPreset(("query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h")),
    "baichuan": LoraPreset(("W_pack", "o_proj", "gate_proj", "up_proj", "down_proj")),
    "internlm2": LoraPreset(("wqkv", "wo", "w1", "w2", "w3")),
}


def resolve_lora(lora, family: str) -> dict:
    """The LoRA settings a run uses: explicit config values over the family preset. Unknown family → all-linear."""
    preset = PRESETS.get(family)
    targets = lora.target_modules or (list(preset.targets) if preset else "all-linear")
    if not targets:
        raise ConfigError("lora.target_modules is empty: name at least one module")
    return {
        "r": lora.r or (preset.r if preset else 16),
        "alpha": lora.alpha or (preset.alpha if preset else 32.0),
        "dropout": lora.dropout if lora.dropout is not None else (preset.dropout if preset else 0.0),
        "target_modules": targets,
        "rslora": lora.rslora,
        "dora": lora.dora,
        "quantize": lora.quantize,
        "preset": family if preset else "all-linear",
    }
