"""Load the base model and tokenizer and wrap the model with LoRA (PEFT): plain, rsLoRA, DoRA or QLoRA."""

from __future__ import annotations

import importlib.util

import torch

from domainlm import log
from domainlm.errors import ConfigError

logger = log.get("training")


def load_tokenizer(path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _quantization_config(kind: str, device: torch.device, dtype: torch.dtype):
    if kind == "none":
        return None
    have_bnb = importlib.util.find_spec("bitsandbytes") is not None
    if device.type != "cuda" or not have_bnb:
        raise ConfigError(
            f"lora.quantize: {kind} (QLoRA) needs the bitsandbytes package and a CUDA GPU; this run has "
            f"device={device.type}, bitsandbytes {'installed' if have_bnb else 'missing'}."
            " Set lora.quantize: none to train plain LoRA on bf16/fp32 base weights.")
    from transformers import BitsAndBytesConfig

    if kind == "4bit":
        return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                  bnb_4bit_compute_dtype=dtype)
    return BitsAndBytesConfig(load_in_8bit=True)


def load_lora_model(base_path, lora: dict, *, device: torch.device, dtype: torch.dtype, seed: int,
                    attn_implementation: str = "sdpa", gradient_checkpointing: bool = False):
    """Base weights in `dtype` (frozen), LoRA weights in fp32 (optimizer master copies), on `device`."""
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM

    quant = _quantization_config(lora["quantize"], device, dtype)
    kwargs = {"dtype": dtype, "attn_implementation": attn_implementation}
    if quant is not None:
        kwargs.update(quantization_config=quant, device_map={"": device.index or 0})
    model = AutoModelForCausalLM.from_pretrained(base_path, **kwargs)
    if quant is None:
        model.to(device)
    else:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=gradient_checkpointing)
    model.config.use_cache = False
    for param in model.parameters():
        param.requires_grad_(False)
    config = LoraConfig(r=lora["r"], lora_alpha=lora["alpha"], lora_dropout=lora["dropout"],
                        target_modules=lora["target_modules"], use_rslora=lora["rslora"], use_dora=lora["dora"],
                        bias="none", task_type="CAUSAL_LM")
    torch.manual_seed(seed)   # LoRA A init is random: same seed, same adapter start
    try:
        model = get_peft_model(model, config)
    except ValueError as exc:
        raise ConfigError(f"lora.target_modules {lora['target_modules']}: {exc}") from None
    for param in model.parameters():
        if param.requires_grad and param.dtype != torch.float32:
            param.data = param.data.float()
    if gradient_checkpointing:
        model.get_base_model().gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    logger.info("lora model ready", trainable_params=trainable, r=lora["r"], targets=lora["target_modules"],
                dtype=str(dtype).replace("torch.", ""), device=str(device))
    return model
