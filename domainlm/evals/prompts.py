"""Items → model requests: plain text or the chat template, zero- or few-shot with seeded draws.

Multiple choice follows lm-evaluation-harness: context = prompt, continuation = target delimiter " " + choice
(chat style: the assistant turn starts the answer, so no delimiter). NLL scores the reference answer after the
chat-templated conversation. Generation gets the prompt text (and the messages, for chat endpoints).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from domainlm.evals.tasks.base import Item, Task, answer_text, choice_continuations, render

TARGET_DELIMITER = " "   # lm-eval's default target_delimiter
FEWSHOT_DELIMITER = "\n\n"  # lm-eval's default fewshot_delimiter


@dataclass(frozen=True)
class LLRequest:
    """log P(continuation | context), summed over the continuation's tokens."""

    context: str
    continuation: str
    max_tokens: int | None = None        # score only the continuation's first max_tokens tokens (long answers)


@dataclass(frozen=True)
class GenRequest:
    prompt: str                          # full prompt text (chat style: the rendered chat template)
    messages: tuple | None = field(compare=False)  # chat style: the same prompt as messages (for chat endpoints);
    # left out of equality and hashing: the prompt text is rendered from them
    max_new_tokens: int
    stop: tuple[str, ...]


class PromptBuilder:
    def __init__(self, tokenizer, style: str = "plain", system: str | None = None, seed: int = 1234):
        self.tokenizer = tokenizer
        self.style = style
        self.system = system
        self.seed = seed

    def shots(self, task: Task, item: Item, k: int) -> list[Item]:
        """k solved examples drawn with a seed fixed by (seed, task, item): the same on every run."""
        if k <= 0:
            return []
        pool = [s for s in (task.fewshot_pool or task.items) if s.id != item.id]
        subject = item.fields.get("subject")
        same = [s for s in pool if subject and s.fields.get("subject") == subject]
        pool = same if len(same) >= k else pool
        rng = random.Random(f"{self.seed}:{task.name}:{item.id}")
        return rng.sample(pool, min(k, len(pool)))

    def _messages(self, task: Task, item: Item, k: int) -> list[dict]:
        messages = [{"role": "system", "content": self.system}] if self.system else []
        for shot in self.shots(task, item, k):
            messages += [{"role": "user", "content": render(task, shot)},
                         {"role": "assistant", "content": answer_text(task, shot)}]
        return messages + [{"role": "user", "content": render(task, item)}]

    def chat_text(self, messages) -> str:
        return self.tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)

    def _plain(self, task: Task, item: Item, k: int) -> str:
        shots = [render(task, s) + TARGET_DELIMITER + answer_text(task, s) for s in self.shots(task, item, k)]
        return FEWSHOT_DELIMITER.join(shots + [render(task, item)])

    def context(self, task: Task, item: Item, k: int) -> tuple[str, tuple | None]:
        """(prompt text, messages or None) for one item."""
        if item.messages:  # chat-native rows (held-out SFT splits) always use the chat template
            messages = list(item.messages)
            if self.system and messages[0].get("role") != "system":
                messages.insert(0, {"role": "system", "content": self.system})
            return self.chat_text(messages), tuple(messages)
        if self.style == "chat":
            messages = self._messages(task, item, k)
            return self.chat_text(messages), tuple(messages)
        return self._plain(task, item, k), None

    def loglikelihood_requests(self, task: Task, item: Item, k: int) -> list[LLRequest]:
        text, messages = self.context(task, item, k)
        delimiter = "" if messages is not None else TARGET_DELIMITER
        if task.kind == "multiple_choice":
            return [LLRequest(text, delimiter + c) for c in choice_continuations(task, item)]
        return [LLRequest(text, delimiter + (item.reference or ""), task.max_answer_tokens)]  # nll

    def generate_request(self, task: Task, item: Item, k: int, max_new_tokens: int | None = None) -> GenRequest:
        text, messages = self.context(task, item, k)
        stop = () if messages is not None else task.stop  # chat turns end at the template's end-of-turn token
        return GenRequest(text, messages, max_new_tokens or task.max_new_tokens, tuple(stop))
