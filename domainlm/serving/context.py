"""Prompt-length checks before a request reaches an engine: prompt tokens + max_tokens must fit the context.

Byte-level BPE never makes more tokens than UTF-8 bytes, so when the byte count (plus chat-template overhead)
already fits, no tokenizer runs (the common case, ~µs). Nor does it make fewer than bytes / (the vocabulary's
longest token), so a prompt too long even at that rate is refused without tokenizing it either: a client cannot
make the gateway tokenize megabytes. Only in between is the prompt tokenized exactly.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

TEMPLATE_OVERHEAD = 8  # tokens a chat template adds per message (role markers), generous for ChatML/Llama


class PromptCounter:
    def __init__(self, tokenizer_path: str | Path | None):
        self.path = tokenizer_path
        self._tokenizer = None

    def _tok(self):
        if self._tokenizer is None and self.path is not None:
            from transformers import AutoTokenizer

            self._tokenizer = AutoTokenizer.from_pretrained(self.path)
        return self._tokenizer

    def longest_token_bytes(self) -> int | None:
        """Bytes of the vocabulary's longest token (byte-level BPE: one character per byte); None without one."""
        tok = self._tok()
        if tok is None:
            return None
        if not hasattr(self, "_longest"):
            self._longest = max(len(t) for t in tok.get_vocab())
        return self._longest

    def lower_bound(self, prompt_bytes: int) -> int:
        """Tokens the prompt makes at the least (0 when the tokenizer is unknown)."""
        longest = self.longest_token_bytes()
        return -(-prompt_bytes // longest) if longest else 0

    @staticmethod
    def prompt_bytes_chat(messages: list[dict]) -> int:
        return sum(len((m.get("content") or "").encode()) for m in messages)

    @staticmethod
    def upper_bound_chat(messages: list[dict]) -> int:
        return sum(len((m.get("content") or "").encode()) + TEMPLATE_OVERHEAD for m in messages) + TEMPLATE_OVERHEAD

    @staticmethod
    def upper_bound_text(prompts: list[str]) -> int:
        return max(len(p.encode()) for p in prompts) + 2

    async def exact_chat(self, messages: list[dict]) -> int | None:
        tok = self._tok()
        if tok is None:
            return None

        def count() -> int:
            ids = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
            return len(ids["input_ids"] if hasattr(ids, "keys") else ids)
        return await asyncio.to_thread(count)

    async def exact_text(self, prompts: list[str]) -> int | None:
        tok = self._tok()
        if tok is None:
            return None
        return await asyncio.to_thread(lambda: max(len(tok(p)["input_ids"]) for p in prompts))
