"""Any OpenAI-compatible endpoint (vLLM's server, the domainlm gateway): multiple choice via /v1/completions with
echo + logprobs (the prompt's own token log-probs), generation via /v1/chat/completions (chat style) or
/v1/completions (plain style).

Prompts go as token ids by default, so the continuation starts at a known token; `mc_prompt: text` sends text and
finds the continuation by character offsets (for endpoints that only accept strings).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

from domainlm import log
from domainlm.errors import ConfigError, DomainlmError
from domainlm.evals.backends.base import Encoded, cut_at_stop
from domainlm.evals.prompts import GenRequest
from domainlm.evals.subjects import Subject

logger = log.get("evals.openai")


class EndpointError(DomainlmError):
    """The endpoint answered with an error or without the log-probs multiple choice needs."""


class OpenAIBackend:
    name = "openai"

    def __init__(self, base, subjects: list[Subject], cfg, tokenizer, seed: int = 0):
        import openai

        if not cfg.endpoint:
            raise ConfigError("backend openai needs an endpoint: --endpoint URL or openai.endpoint in the config")
        self.cfg = cfg
        self.base = base
        self.tokenizer = tokenizer
        self.seed = seed
        self.client = openai.OpenAI(base_url=cfg.endpoint, api_key=os.environ.get(cfg.api_key_env) or "EMPTY",
                                    timeout=cfg.timeout_s, max_retries=2)
        self.names = {s.label: self._served_name(s) for s in subjects}

    def _served_name(self, subject: Subject) -> str:
        if subject.label in self.cfg.models:
            return self.cfg.models[subject.label]
        if not subject.is_base:
            return subject.label  # the gateway serves registered versions as <vertical>@<version>
        try:
            served = list(self.client.models.list())
        except Exception as exc:
            raise EndpointError(f"{self.cfg.endpoint}: cannot list models ({exc})") from None
        roots = [m.id for m in served if not getattr(m, "parent", None)]
        if not roots:
            raise ConfigError(f"{self.cfg.endpoint} serves no base model; name it with openai.models.base")
        return roots[0]

    def identity(self, subject: Subject) -> dict:
        return {"backend": "openai", "endpoint": self.cfg.endpoint, "model": self.names[subject.label],
                "base": self.base.weights_sha256, "adapter": subject.artifact_id, "mc_prompt": self.cfg.mc_prompt}

    def _map(self, fn, chunks):
        with ThreadPoolExecutor(max_workers=self.cfg.concurrency) as pool:
            return [r for part in pool.map(fn, chunks) for r in part]

    # --- multiple choice / NLL ------------------------------------------------------------------------------

    def loglikelihood(self, subject: Subject, pairs: list[Encoded]) -> list[dict]:
        name = self.names[subject.label]
        chunks = [pairs[i:i + self.cfg.batch] for i in range(0, len(pairs), self.cfg.batch)]
        return self._map(lambda chunk: self._score_chunk(name, chunk), chunks)

    def _score_chunk(self, name: str, chunk: list[Encoded]) -> list[dict]:
        if self.cfg.mc_prompt == "tokens":
            prompt = [list(p.context + p.continuation) for p in chunk]
        else:
            prompt = [p.request.context + p.request.continuation for p in chunk]
        try:
            response = self.client.completions.create(model=name, prompt=prompt, max_tokens=1, echo=True, logprobs=1,
                                                      temperature=0.0)
        except Exception as exc:
            raise EndpointError(f"{self.cfg.endpoint}: completions for '{name}' failed: {exc}") from None
        choices = sorted(response.choices, key=lambda c: c.index)
        return [self._read(pair, choice.logprobs, name) for pair, choice in zip(chunk, choices, strict=True)]

    def _read(self, pair: Encoded, lp, name: str) -> dict:
        if lp is None or not lp.token_logprobs:
            raise EndpointError(f"{self.cfg.endpoint}: '{name}' returned no prompt log-probs (echo + logprobs)")
        if self.cfg.mc_prompt == "tokens":
            n_prompt = len(pair.context) + len(pair.continuation)
            positions = range(len(pair.context), n_prompt)
        else:
            boundary = len(pair.request.context.rstrip())  # the trailing space belongs to the continuation
            end = len(pair.request.context) + len(pair.request.continuation)
            positions = [i for i, off in enumerate(lp.text_offset) if boundary <= off < end]
        total, greedy = 0.0, True
        for i in positions:
            value = lp.token_logprobs[i]
            total += value
            top = lp.top_logprobs[i] if lp.top_logprobs and lp.top_logprobs[i] else {}
            greedy = greedy and (not top or value >= max(top.values()) - 1e-6)
        return {"logprob": float(total), "tokens": len(positions), "greedy": greedy}

    # --- generation -----------------------------------------------------------------------------------------

    def generate(self, subject: Subject, requests: list[GenRequest]) -> list[str]:
        name = self.names[subject.label]
        return self._map(lambda r: [self._generate_one(name, r[0])], [[r] for r in requests])

    def _generate_one(self, name: str, request: GenRequest) -> str:
        common = dict(model=name, max_tokens=request.max_new_tokens, temperature=0.0, seed=self.seed,
                      stop=list(request.stop) or None)
        try:
            if request.messages is not None:
                response = self.client.chat.completions.create(messages=list(request.messages), **common)
                text = response.choices[0].message.content or ""
            else:
                response = self.client.completions.create(prompt=request.prompt, **common)
                text = response.choices[0].text
        except Exception as exc:
            raise EndpointError(f"{self.cfg.endpoint}: generation with '{name}' failed: {exc}") from None
        return cut_at_stop(text, request.stop).strip()

    def close(self) -> None:
        self.client.close()
