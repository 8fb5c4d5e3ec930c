"""vLLM's CPU punica wrapper running domainlm's multi-LoRA ops (vllm_cpu_lora.py), named by DomainlmCpuPlatform.

A module of its own: vLLM imports it by qualified name once its platform is resolved (importing vLLM's punica
package while the platform is being resolved would be circular).
"""

from __future__ import annotations

from vllm.lora.punica_wrapper.punica_cpu import PunicaWrapperCPU

from domainlm.kernels.ops import vllm_cpu_lora as ops


class DomainlmPunicaWrapperCPU(PunicaWrapperCPU):
    """PunicaWrapperCPU with fused linear/logits LoRA and GEMM-based shrink/expand (vllm_cpu_lora.py)."""

    def __init__(self, max_num_batched_tokens: int, max_batches: int, device, **kwargs):
        super().__init__(max_num_batched_tokens, max_batches, device, **kwargs)
        self.lora_cache = ops.LoraCache()
        self.step_has_lora = None  # (step key, any token with an adapter?) for the compiled kernel's early exit

    add_lora_linear = ops.add_lora_linear
    add_lora_logits = ops.add_lora_logits

    def _shrink_prefill(self, y, x, w_t_all, scale):
        if not self.no_lora:
            ops.sgmv_shrink(self.lora_cache, x, w_t_all, y, *self.prefill_metadata, scale)

    def _shrink_decode(self, y, x, w_t_all, scale):
        ops.bgmv_shrink(self.lora_cache, x, w_t_all, y, self.token_lora_indices, scale)

    def _expand_prefill(self, y, x, w_t_all, add_inputs):
        if not self.no_lora:
            ops.sgmv_expand(self.lora_cache, x, w_t_all, y, *self.prefill_metadata, add_inputs)

    def _expand_decode(self, y, x, w_t_all, add_inputs):
        ops.bgmv_expand(self.lora_cache, x, w_t_all, y, self.token_lora_indices, add_inputs)

    def _expand_slice_prefill(self, y, x, w_t_all, y_offset, y_slice_size, add_inputs):
        if not self.no_lora:
            ops.sgmv_expand_slice(self.lora_cache, x, w_t_all, y, *self.prefill_metadata, y_offset, y_slice_size,
                                  add_inputs)

    def _expand_slice_decode(self, y, x, w_t_all, y_offset, y_slice_size, add_inputs):
        ops.bgmv_expand_slice(self.lora_cache, x, w_t_all, y, self.token_lora_indices, y_offset, y_slice_size,
                              add_inputs)
