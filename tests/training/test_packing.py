"""Packed rows (varlen attention, position ids restarting per row) give the same loss and gradients as the same
rows padded, on the real model, through both the HF modules and domainlm's fused forward."""

from __future__ import annotations

import pytest
import torch

from domainlm.data.batching import pack, pad
from domainlm.data.encode import ChatEncoder
from domainlm.training.forward import CausalLMLoss
from domainlm.training.model import load_lora_model, load_tokenizer

ROWS = [
    [{"role": "user", "content": "What is hypertension?"},
     {"role": "assistant", "content": "Persistently high blood pressure, usually 130/80 mmHg or more."}],
    [{"role": "user", "content": "What is catalytic cracking?"},
     {"role": "assistant", "content": "Breaking heavy hydrocarbons into lighter fuels over a zeolite catalyst."}],
    [{"role": "system", "content": "Answer in one word."}, {"role": "user", "content": "Gas in LPG?"},
     {"role": "assistant", "content": "Propane."}],
]
LORA = {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                                                 "up_proj", "down_proj"],
        "rslora": False, "dora": False, "quantize": "none"}


def loss_and_grads(base_model, kernels, batch, dtype):
    model = load_lora_model(base_model.path, LORA, device=torch.device("cpu"), dtype=dtype, seed=0)
    for index, (name, param) in enumerate(p for p in model.named_parameters() if p[1].requires_grad):
        if "lora_B" in name:   # B starts at zero; give it values so the LoRA path carries gradient to A too
            param.data = torch.randn(param.shape, generator=torch.Generator().manual_seed(index)) * 0.02
    module = CausalLMLoss(model, kernels).train()
    loss = module(batch.input_ids, batch.position_ids, batch.targets, batch.attention_mask, batch.cu_seqlens)
    loss.backward()
    return loss.item() / batch.n_targets, torch.cat([p.grad.flatten() for p in module.parameters()
                                                     if p.requires_grad])


@pytest.mark.slow
@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-5),
                                        # bf16 where training uses it: emulated elsewhere (~1 min here for nothing)
                                        pytest.param(torch.bfloat16, 2e-2, marks=pytest.mark.avx512_bf16)])
def test_packed_and_unpacked_losses_agree(base_model, dtype, tol):
    tokenizer = load_tokenizer(base_model.path)
    encoder = ChatEncoder(tokenizer, 128)
    rows = [encoder.encode(messages) for messages in ROWS]
    padded_loss, padded_grad = loss_and_grads(base_model, "hf", pad(rows, tokenizer.pad_token_id), dtype)
    for kernels in ("hf", "fused"):
        loss, grad = loss_and_grads(base_model, kernels, pack(rows), dtype)
        assert abs(loss - padded_loss) / padded_loss < tol, (kernels, loss, padded_loss)
        assert ((grad - padded_grad).norm() / padded_grad.norm()).item() < tol * 10, kernels
