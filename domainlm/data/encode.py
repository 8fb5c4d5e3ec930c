"""Messages → token ids + next-token targets, rendered with the base model's own chat template.

Loss is taken on assistant tokens only: each assistant turn's character span is found by rendering the
conversation prefix with and without that turn (templates render prefixes as prefixes; we check), and tokens whose
offsets start inside a span are trained. The span ends at the end-of-turn token, so the model learns to stop.
Targets are shifted inside each example (target[i] = token[i + 1]) so packing never trains across rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from domainlm.data.formats import BadRow
from domainlm.errors import DataError

IGNORE = -100


@dataclass(frozen=True)
class Encoded:
    input_ids: np.ndarray   # int32 [n]
    targets: np.ndarray     # int32 [n]: next token where it is an assistant token, else IGNORE
    truncated: bool = False

    @property
    def n_targets(self) -> int:
        return int((self.targets != IGNORE).sum())

    def __len__(self) -> int:
        return len(self.input_ids)


class ChatEncoder:
    def __init__(self, tokenizer, max_length: int, truncate: bool = False):
        if not getattr(tokenizer, "chat_template", None):
            raise DataError("the base model's tokenizer has no chat template: cannot render training conversations")
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.truncate = truncate

    def render(self, messages: list[dict], generation_prompt: bool = False) -> str:
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)

    def assistant_spans(self, messages: list[dict]) -> tuple[str, list[tuple[int, int]]]:
        text = self.render(messages)
        spans = []
        for index, message in enumerate(messages):
            if message["role"] != "assistant":
                continue
            start = len(self.render(messages[:index], generation_prompt=True))
            through = self.render(messages[: index + 1])
            if not text.startswith(through) or start > len(through):
                raise DataError("the chat template does not render conversation prefixes as prefixes of the whole "
                                "conversation, so assistant-only loss cannot be located; use a base model whose "
                                "template is prefix-stable (ChatML, Llama-3, Qwen2.5 …)")
            end = len(through.rstrip())   # through the end-of-turn marker, not the newline after it
            spans.append((start, end))
        return text, spans

    def encode(self, messages: list[dict]) -> Encoded:
        text, spans = self.assistant_spans(messages)
        encoding = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        ids = np.asarray(encoding["input_ids"], dtype=np.int32)
        starts = np.asarray([o[0] for o in encoding["offset_mapping"]], dtype=np.int64)
        trained = np.zeros(len(ids), dtype=bool)
        for start, end in spans:
            trained |= (starts >= start) & (starts < end)
        truncated = False
        if len(ids) > self.max_length:
            if not self.truncate:
                raise BadRow("over_length", f"{len(ids)} tokens > data.max_length {self.max_length} "
                                            "(raise max_length, or set data.truncate: true)")
            ids, trained, truncated = ids[: self.max_length], trained[: self.max_length], True
        targets = np.full(len(ids), IGNORE, dtype=np.int32)
        targets[:-1] = np.where(trained[1:], ids[1:], IGNORE)
        if not (targets != IGNORE).any():
            raise BadRow("no_answer_tokens", "no assistant token falls within data.max_length")
        return Encoded(ids, targets, truncated)
