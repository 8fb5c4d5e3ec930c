"""The fused training forward for llama-like decoders (llama, mistral, qwen2), reading the PEFT model's own tensors.

Per layer: [RMSNorm → one q‖k‖v LoRA GEMM group] → [RoPE → varlen attention over packed rows] → o LoRA → residual →
[RMSNorm → one gate‖up LoRA group] → [SwiGLU → down LoRA] → residual; each bracket is one op whose elementwise
prologue is recomputed in backward (domainlm/kernels/ops/lora.py), so only the residual stream, q/k/v, the
attention output and the gate‖up product are held per layer. The LoRA matrices are the PEFT model's
parameters themselves (the optimizer, checkpoints and `save_pretrained` see nothing different); the frozen base
q/k/v and gate/up weights are concatenated once and the PEFT modules are re-pointed at views of that storage, so
no weight is held twice; for q‖k‖v, o and down that storage has R more rows, where the op keeps a bf16 copy of A so
the base GEMM also yields x·Aᵀ. Anything outside this shape (DoRA, quantised bases, other families) uses the HF modules.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from domainlm.kernels.ops import fused_lora_linear, rms_norm, swiglu
from domainlm.kernels.ops.attention import qkv_attention
from domainlm.kernels.ops.rope import signed_sin

SUPPORTED_FAMILIES = ("llama", "mistral", "qwen2")


def unsupported_reason(model, lora: dict) -> str | None:
    """Why the fused path cannot run this model (None when it can)."""
    config = model.get_base_model().config
    if config.model_type not in SUPPORTED_FAMILIES:
        return f"family {config.model_type} (fused: {', '.join(SUPPORTED_FAMILIES)})"
    if lora["dora"] or lora["quantize"] != "none":
        return "DoRA / quantised base"
    if getattr(config, "hidden_act", "silu") != "silu" or getattr(config, "pretraining_tp", 1) != 1:
        return "activation or tensor-parallel layout"
    if getattr(config, "use_sliding_window", False) or (config.model_type == "mistral"
                                                      and getattr(config, "sliding_window", None)):
        return "sliding-window attention"
    targets = lora["target_modules"]
    if isinstance(targets, str) or not set(targets) <= {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                                        "up_proj", "down_proj"}:
        return f"target modules {targets}"
    return None


@dataclass
class LoRAGroup:
    """Projections sharing one input: a frozen concatenated weight plus each projection's LoRA (if adapted)."""

    weight: torch.Tensor
    bias: torch.Tensor | None
    lora_a: list[torch.Tensor]
    lora_b: list[torch.Tensor]
    scalings: list[float]
    dropout: float
    wide: torch.Tensor | None = None   # [weight; A] storage when the shrink folds into the base GEMM (_folds)

    def __call__(self, x: torch.Tensor, training: bool, prologue: str | None = None,
                 norm_weight: torch.Tensor | None = None, eps: float = 1e-6) -> torch.Tensor:
        """x → prologue (rmsnorm / swiglu, fused and recomputed in backward) → base + LoRA projections."""
        if not self.lora_a:
            if prologue == "rmsnorm":
                x = rms_norm(x, norm_weight, eps)
            elif prologue == "swiglu":
                x = swiglu(x)
            return F.linear(x, self.weight, self.bias)
        return fused_lora_linear(x, self.weight, self.bias, self.lora_a, self.lora_b, self.scalings,
                                 self.dropout if training else 0.0, prologue=prologue, norm_weight=norm_weight,
                                 eps=eps, wide=self.wide)


def _folds(out: int, inp: int, rank: int, has_bias: bool) -> bool:
    """Whether the LoRA shrink x·Aᵀ rides in the base GEMM as R extra rows of a wide weight. Measured on 2354 tokens
    (bf16, 2-core AVX512-BF16): q‖k‖v 6.74 → 6.58 ms, o 3.91 → 3.73, down 10.26 → 9.84, but gate‖up (out = 5.3·in)
    20.25 → 20.99, so only groups whose output is at most twice their input fold."""
    return rank > 0 and not has_bias and out <= 2 * inp


def _group(modules: list, adapter: str) -> LoRAGroup:
    bases = [getattr(m, "base_layer", m) for m in modules]
    weights = [b.weight for b in bases]
    biases = [b.bias for b in bases]
    adapted = [hasattr(m, "lora_A") and adapter in m.lora_A for m in modules]
    rank = sum(m.lora_A[adapter].weight.shape[0] for m, has in zip(modules, adapted, strict=True) if has)
    out, inp = sum(w.shape[0] for w in weights), weights[0].shape[1]
    wide = None
    if _folds(out, inp, rank, any(b is not None for b in biases)):   # [W; A] storage, A rows written by the op
        wide = torch.empty((out + rank, inp), dtype=weights[0].dtype, device=weights[0].device)
        torch.cat([w.detach() for w in weights], out=wide[:out])
        fused = wide[:out]
    elif len(weights) == 1:
        fused = weights[0]
    else:
        fused = torch.cat([w.detach() for w in weights])
    if fused is not weights[0]:
        row = 0
        for base, w in zip(bases, weights, strict=True):   # re-point each module at its rows of the fused storage
            base.weight = torch.nn.Parameter(fused[row:row + w.shape[0]], requires_grad=False)
            row += w.shape[0]
    bias = None if all(b is None for b in biases) else torch.cat(
        [b.detach() if b is not None else torch.zeros(w.shape[0], dtype=fused.dtype, device=fused.device)
         for b, w in zip(biases, weights, strict=True)])
    lora_a, lora_b, scalings, dropout = [], [], [], 0.0
    if any(adapted):
        for module, has, w in zip(modules, adapted, weights, strict=True):
            if has:
                lora_a.append(module.lora_A[adapter].weight)
                lora_b.append(module.lora_B[adapter].weight)
                scalings.append(float(module.scaling[adapter]))
                drop = module.lora_dropout[adapter]
                dropout = max(dropout, float(getattr(drop, "p", 0.0)))
            else:   # an un-adapted projection in an adapted group: a rank-0 block
                lora_a.append(w.new_zeros((0, w.shape[1]), dtype=torch.float32))
                lora_b.append(w.new_zeros((w.shape[0], 0), dtype=torch.float32))
                scalings.append(0.0)
    return LoRAGroup(fused, bias, lora_a, lora_b, scalings, dropout, wide)


@dataclass
class FusedLayer:
    ln1: torch.Tensor
    ln2: torch.Tensor
    qkv: LoRAGroup
    o: LoRAGroup
    gate_up: LoRAGroup
    down: LoRAGroup


class FusedLlama:
    def __init__(self, peft_model, adapter: str = "default"):
        hf = peft_model.get_base_model()
        config = hf.config
        self.heads = config.num_attention_heads
        self.kv_heads = getattr(config, "num_key_value_heads", None) or self.heads
        self.head_dim = getattr(config, "head_dim", None) or config.hidden_size // self.heads
        self.eps = config.rms_norm_eps
        self.scale = self.head_dim ** -0.5
        decoder = hf.model
        self.embed = decoder.embed_tokens
        self.rotary = decoder.rotary_emb
        self.final_norm = decoder.norm.weight
        self.lm_head = hf.get_output_embeddings().weight
        self.layers = []
        for layer in decoder.layers:
            attn, mlp = layer.self_attn, layer.mlp
            self.layers.append(FusedLayer(
                ln1=layer.input_layernorm.weight, ln2=layer.post_attention_layernorm.weight,
                qkv=_group([attn.q_proj, attn.k_proj, attn.v_proj], adapter), o=_group([attn.o_proj], adapter),
                gate_up=_group([mlp.gate_proj, mlp.up_proj], adapter), down=_group([mlp.down_proj], adapter)))

    def _layer(self, x: torch.Tensor, layer: FusedLayer, cos, sin, cu: list[int], training: bool) -> torch.Tensor:
        tokens = x.shape[0]
        qkv = layer.qkv(x, training, "rmsnorm", layer.ln1, self.eps)
        attn = qkv_attention(qkv, self.heads, self.kv_heads, cu, self.scale, cos, sin)
        attn = attn.reshape(tokens, self.heads * self.head_dim)
        x = x + layer.o(attn, training)
        gate_up = layer.gate_up(x, training, "rmsnorm", layer.ln2, self.eps)
        return x + layer.down(gate_up, training, "swiglu")

    def hidden_states(self, input_ids: torch.Tensor, position_ids: torch.Tensor, cu: list[int], *,
                      training: bool, checkpointing: bool = False) -> torch.Tensor:
        """Packed input_ids/position_ids [1, T] → final-norm hidden states [T, H]."""
        x = self.embed(input_ids[0])
        cos, sin = self.rotary(x[None], position_ids)      # [1, T, D] in x's dtype
        cos, sin = cos[0, :, None, :], signed_sin(sin[0, :, None, :])  # broadcast over heads
        for layer in self.layers:
            if checkpointing and training and torch.is_grad_enabled():
                x = checkpoint(self._layer, x, layer, cos, sin, cu, training, use_reentrant=False)
            else:
                x = self._layer(x, layer, cos, sin, cu, training)
        return rms_norm(x, self.final_norm, self.eps)

