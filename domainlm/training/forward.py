"""The training module: batch tensors in, Σ cross-entropy over assistant tokens out.

Two interchangeable paths compute the same number. `fused`: domainlm's llama-like forward (fused_llama.py).
`hf`: the transformers modules with PEFT's LoRA layers, packed rows through a registered varlen attention.
Both end in the chunked lm-head + CE, applied only to tokens that carry loss, so full-vocab logits never exist.
The module wraps the PEFT model so DDP/FSDP (accelerate.prepare) see one root module whose forward is the loss.
"""

from __future__ import annotations

import torch
from torch import nn

from domainlm.data.encode import IGNORE
from domainlm.errors import ConfigError
from domainlm.kernels.ops import linear_cross_entropy
from domainlm.kernels.ops.attention import register_hf_attention
from domainlm.training.fused_llama import FusedLlama, unsupported_reason


def choose_kernels(requested: str, peft_model, lora: dict, distributed_type: str) -> tuple[str, str | None]:
    """('fused' | 'hf', reason the fused path was not taken)."""
    reason = unsupported_reason(peft_model, lora)
    if distributed_type in ("FSDP", "DEEPSPEED", "MEGATRON_LM"):
        reason = f"{distributed_type} shards parameters (fused path reads them directly)"
    if requested == "fused" and reason:
        raise ConfigError(f"train.kernels: fused is not available for this run: {reason}. Use auto or hf.")
    if requested == "hf" or reason:
        return "hf", reason
    return "fused", None


class CausalLMLoss(nn.Module):
    def __init__(self, peft_model, kernels: str, ce_chunk: int = 512, checkpointing: bool = False):
        super().__init__()
        self.peft = peft_model
        self.kernels = kernels
        self.ce_chunk = ce_chunk
        self.checkpointing = checkpointing
        hf = peft_model.get_base_model()
        config = hf.config
        if getattr(config, "final_logit_softcapping", None) or getattr(config, "logit_scale", None):
            raise ConfigError(f"{config.model_type}: logit soft-capping/scaling is not supported by the chunked loss")
        self._fused = FusedLlama(peft_model) if kernels == "fused" else None
        if kernels == "hf":
            hf.config._attn_implementation = register_hf_attention()

    def lm_head_weight(self) -> torch.Tensor:
        return self.peft.get_base_model().get_output_embeddings().weight

    def hidden_states(self, input_ids, position_ids, attention_mask=None, cu_seqlens=None) -> torch.Tensor:
        cu = cu_seqlens.tolist() if cu_seqlens is not None else None
        if self._fused is not None:
            if cu is None:
                raise ValueError("the fused path takes packed batches (data.packing: true)")
            return self._fused.hidden_states(input_ids, position_ids, cu, training=self.training,
                                             checkpointing=self.checkpointing)
        decoder = self.peft.get_base_model().model
        extra = {"domainlm_cu_seqlens": cu} if cu is not None else {}
        out = decoder(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                      use_cache=False, **extra)
        return out.last_hidden_state

    def forward(self, input_ids, position_ids, targets, attention_mask=None, cu_seqlens=None) -> torch.Tensor:
        hidden = self.hidden_states(input_ids, position_ids, attention_mask, cu_seqlens)
        flat_targets = targets.reshape(-1)
        keep = (flat_targets != IGNORE).nonzero().squeeze(1)
        hidden = hidden.reshape(-1, hidden.shape[-1]).index_select(0, keep)
        return linear_cross_entropy(hidden, self.lm_head_weight(), flat_targets.index_select(0, keep), self.ce_chunk)
