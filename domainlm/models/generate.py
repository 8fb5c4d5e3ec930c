"""Answer a prompt with a base model (optionally + LoRA adapter) using its own chat template."""

from __future__ import annotations

from pathlib import Path


def load_causal_lm(folder: str | Path, adapter: str | Path | None = None, dtype: str = "bfloat16"):
    """(model, tokenizer) in eval mode; the adapter, when given, is applied with peft."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=getattr(torch, dtype))
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter))
    model.eval()
    return model, tokenizer


def chat_input_ids(tokenizer, messages: list[dict]):
    import torch

    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    if isinstance(ids, dict) or hasattr(ids, "keys"):
        ids = ids["input_ids"]
    return torch.tensor([list(ids)], dtype=torch.long)


def generate_answer(folder: str | Path, prompt: str, *, system: str | None = None, adapter: str | Path | None = None,
                    max_new_tokens: int = 128, model_and_tokenizer=None) -> str:
    """Greedy answer, decoded without special tokens."""
    import torch

    model, tokenizer = model_and_tokenizer or load_causal_lm(folder, adapter)
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
    input_ids = chat_input_ids(tokenizer, messages)
    with torch.inference_mode():
        output = model.generate(input_ids, attention_mask=torch.ones_like(input_ids), max_new_tokens=max_new_tokens,
                                do_sample=False, pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id)
    return tokenizer.decode(output[0, input_ids.shape[1]:], skip_special_tokens=True).strip()
