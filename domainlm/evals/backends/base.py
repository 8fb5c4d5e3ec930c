"""What every model backend does, and the tokenisation they share (so hf, vLLM and endpoints score the same tokens).

A backend answers two calls for one subject (base or adapter):
  loglikelihood(subject, pairs) -> [{"logprob", "tokens", "greedy"}]   one per (context ids, continuation ids)
  generate(subject, requests)   -> [text]                              greedy, stop strings applied
plus identity(subject) -> dict (what the results cache keys on) and close().
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from domainlm.evals.prompts import GenRequest, LLRequest
from domainlm.evals.subjects import Subject


@dataclass(frozen=True)
class Encoded:
    """One log-likelihood request split into tokens the way lm-evaluation-harness splits it."""

    request: LLRequest
    context: tuple[int, ...]
    continuation: tuple[int, ...]


class Backend(Protocol):
    name: str

    def identity(self, subject: Subject) -> dict: ...

    def loglikelihood(self, subject: Subject, pairs: list[Encoded]) -> list[dict]: ...

    def generate(self, subject: Subject, requests: list[GenRequest]) -> list[str]: ...

    def close(self) -> None: ...


def _encode_many(tokenizer, texts: list[str]) -> list[list[int]]:
    """lm-eval's tok_encode: the tokenizer's default special tokens, none added when the text starts with BOS."""
    bos = tokenizer.bos_token
    plain = [t for t in texts if not (bos and t.startswith(bos))]
    with_bos = [t for t in texts if bos and t.startswith(bos)]
    out: dict[str, list[int]] = {}
    if plain:
        out.update(zip(plain, tokenizer(plain)["input_ids"], strict=True))
    if with_bos:
        out.update(zip(with_bos, tokenizer(with_bos, add_special_tokens=False)["input_ids"], strict=True))
    return [list(out[t]) for t in texts]


def prefix_token(tokenizer) -> int:
    """What an empty context is replaced by (lm-eval's prefix_token_id): BOS if the model has one, else EOS."""
    return tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id


def encode_requests(tokenizer, requests: list[LLRequest], max_length: int) -> list[Encoded]:
    """Trailing context spaces move to the continuation; continuation = enc(context + continuation)[len(enc(context)):]
    (lm-eval's _encode_pair); long inputs lose context tokens from the left so that len(context + continuation)
    <= max_length + 1, as lm-eval truncates."""
    contexts, wholes, conts_only = [], [], []
    for req in requests:
        spaces = len(req.context) - len(req.context.rstrip())
        context = req.context[: len(req.context) - spaces]
        continuation = req.context[len(context):] + req.continuation
        contexts.append(context)
        wholes.append(context + continuation)
        conts_only.append(continuation)
    unique_ctx = sorted({c for c in contexts if c})
    ctx_ids = dict(zip(unique_ctx, _encode_many(tokenizer, unique_ctx), strict=True)) if unique_ctx else {}
    whole_ids = _encode_many(tokenizer, wholes)
    empty = [i for i, c in enumerate(contexts) if not c]
    cont_for_empty = {}
    if empty:
        cont_for_empty = dict(zip(empty, _encode_many(tokenizer, [conts_only[i] for i in empty]), strict=True))
    out = []
    for i, req in enumerate(requests):
        if contexts[i]:
            context = ctx_ids[contexts[i]]
            continuation = whole_ids[i][len(context):]
        else:
            context, continuation = [prefix_token(tokenizer)], cont_for_empty[i]
        if req.max_tokens:
            continuation = continuation[: req.max_tokens]
        continuation = continuation[: max_length]  # a continuation alone longer than the window keeps its head
        keep = max(1, max_length + 1 - len(continuation))
        out.append(Encoded(req, tuple(context[-keep:]), tuple(continuation)))
    return out


def cut_at_stop(text: str, stop: tuple[str, ...]) -> str:
    """Generated text up to the first stop string."""
    cut = len(text)
    for s in stop:
        at = text.find(s)
        if s and at != -1:
            cut = min(cut, at)
    return text[:cut]
