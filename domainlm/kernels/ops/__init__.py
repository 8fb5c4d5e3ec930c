"""Fused ops for LoRA training, each with a plain reference formulation that tests hold it to.

cross_entropy: lm-head + CE in token chunks (no full logits); lora: grouped LoRA linear (q/k/v, gate/up);
norm: RMSNorm with frozen weight; activation: SwiGLU; attention: varlen causal attention for packed rows.
cpu_*.py + cpu_*_kernel.cpp: the AVX512-BF16 C++ kernels the ops above use for bf16 on CPUs that have it
(attention with RoPE, SwiGLU / RMSNorm / cross-entropy, LoRA weight gradients); built by kernels/native.py.
"""

from domainlm.kernels.ops.activation import swiglu
from domainlm.kernels.ops.attention import varlen_attention
from domainlm.kernels.ops.cross_entropy import linear_cross_entropy
from domainlm.kernels.ops.lora import fused_lora_linear
from domainlm.kernels.ops.norm import rms_norm

__all__ = ["fused_lora_linear", "linear_cross_entropy", "rms_norm", "swiglu", "varlen_attention"]
