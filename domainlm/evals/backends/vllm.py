"""vLLM offline engine backend: one engine for the base, adapters as LoRARequests, multiple choice by prompt_logprobs.

The engine gets token ids (TokensPrompt) built by the shared tokenisation, so it scores exactly the tokens the
hf backend scores. Scripts that use it need an `if __name__ == "__main__":` guard (vLLM spawns workers).
"""

from __future__ import annotations

import os

from domainlm.kernels.dtypes import resolve_dtype
from domainlm import log
from domainlm.errors import ConfigError
from domainlm.evals.backends.base import Encoded, _encode_many, cut_at_stop
from domainlm.evals.prompts import GenRequest
from domainlm.evals.subjects import Subject

logger = log.get("evals.vllm")
LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)  # vLLM's allowed max_lora_rank values


def engine_rank(rank: int) -> int:
    return next((r for r in LORA_RANKS if r >= rank), LORA_RANKS[-1])


class VLLMBackend:
    name = "vllm"

    def __init__(self, base, subjects: list[Subject], cfg, tokenizer, seed: int = 0):
        import torch

        cpu = not torch.cuda.is_available()
        if cpu:
            os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(cfg.kv_cache_gib))
            # Engine core and worker in this process: domainlm's CPU multi-LoRA ops come with the platform vLLM
            # resolves in whichever process runs the model (kernels/ops/vllm_plugin.py).
            os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        from vllm import LLM
        from vllm.lora.request import LoRARequest

        self.cfg = cfg
        self.base = base
        self.tokenizer = tokenizer
        # CPU: bf16 only where it is native; an accelerator's vLLM resolves "auto" from the model itself
        self.dtype_name = resolve_dtype(cfg.dtype, "cpu") if cpu else cfg.dtype
        adapters = [s for s in subjects if not s.is_base]
        kwargs = dict(model=str(base.path), tokenizer=str(base.path), dtype=self.dtype_name, seed=seed,
                      enforce_eager=cfg.enforce_eager, max_model_len=cfg.max_model_len, max_num_seqs=cfg.max_num_seqs)
        if cpu:
            kwargs["distributed_executor_backend"] = "uni"
        else:
            kwargs["gpu_memory_utilization"] = cfg.gpu_memory_utilization
        if adapters:
            # Restrict LoRA to the modules the adapters train. Left open, vLLM also wraps the LM head for LoRA and
            # then cannot compute prompt_logprobs (vllm-project/vllm#16668: the LoRA logits path is indexed per
            # sampled token, not per prompt token; on CPU it fails with an einsum shape error).
            targets = sorted({t for s in adapters for t in s.target_modules()})
            if "lm_head" in targets:
                raise ConfigError("an adapter trains lm_head: vLLM cannot score prompts (prompt_logprobs) with an "
                                  "lm_head LoRA (vllm-project/vllm#16668); evaluate it with --backend hf")
            kwargs.update(enable_lora=True, max_loras=len(adapters), lora_target_modules=targets,
                          max_lora_rank=engine_rank(max(s.lora_rank() for s in adapters)))
        logger.info("starting vLLM engine", model=str(base.path), adapters=len(adapters), eager=cfg.enforce_eager)
        self.llm = LLM(**kwargs)
        self.lora = {s.label: LoRARequest(s.label, i + 1, str(s.adapter)) for i, s in enumerate(adapters)}

    def identity(self, subject: Subject) -> dict:
        return {"backend": "vllm", "dtype": self.dtype_name, "base": self.base.weights_sha256,
                "adapter": subject.artifact_id, "max_length": self.cfg.max_model_len - 1}

    def loglikelihood(self, subject: Subject, pairs: list[Encoded]) -> list[dict]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        prompts = [TokensPrompt(prompt_token_ids=list(p.context + p.continuation)) for p in pairs]
        # max_tokens=1: the engine must sample one token; prompt_logprobs=1 also returns each prompt token's rank
        params = SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=1, detokenize=False)
        outputs = self.llm.generate(prompts, params, lora_request=self.lora.get(subject.label), use_tqdm=False)
        results = []
        for pair, output in zip(pairs, outputs, strict=True):
            start = len(pair.context)
            total, greedy = 0.0, True
            for offset, token in enumerate(pair.continuation):
                entry = output.prompt_logprobs[start + offset][token]
                total += entry.logprob
                greedy = greedy and entry.rank == 1
            results.append({"logprob": float(total), "tokens": len(pair.continuation), "greedy": greedy})
        return results

    def generate(self, subject: Subject, requests: list[GenRequest]) -> list[str]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        ids = _encode_many(self.tokenizer, [r.prompt for r in requests])
        prompts = [TokensPrompt(prompt_token_ids=p[-max(1, self.cfg.max_model_len - r.max_new_tokens):])
                   for p, r in zip(ids, requests, strict=True)]
        params = [SamplingParams(max_tokens=r.max_new_tokens, temperature=0.0, stop=list(r.stop) or None)
                  for r in requests]
        outputs = self.llm.generate(prompts, params, lora_request=self.lora.get(subject.label), use_tqdm=False)
        return [cut_at_stop(o.outputs[0].text, r.stop).strip() for o, r in zip(outputs, requests, strict=True)]

    def close(self) -> None:
        self.llm = None
