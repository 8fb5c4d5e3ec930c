"""The gateway's use of a vertical's policy (domainlm.verticals.policy): one object per request.

Chat requests get the vertical's system prompt in the request's language, refusals and safety notes; completions
(the raw-text and scoring interface: echo/logprobs) get refusals and logging rules but no appended text, which
would change what is being scored. The audit keeps only what the vertical's logging rules allow.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from domainlm.verticals import get_vertical
from domainlm.verticals import policy as vpolicy


@dataclass
class RequestPolicy:
    vertical: str | None
    lang: str = "en"
    prompt_notes: list[str] = field(default_factory=list)   # triggered by the prompt (known before generation)
    applied: list[str] = field(default_factory=list)        # every note/disclaimer appended to an answer
    refusal_rule: str | None = None      # the gateway answered with this rule's refusal text (no model call)
    refuse_as_error: bool = False        # ... as an OpenAI-shaped 400 instead (guardrails.refuse_as: error)
    input_flag: dict | None = None       # {"rule", "action"}: a refusal pattern matched the request
    output_flags: list[dict] = field(default_factory=list)   # {"rule", "action", "choice"} per answer checked
    review_ids: list[str] = field(default_factory=list)      # answers held for review
    guard_seconds: float = 0.0           # time spent in the guard's checks (the /metrics histogram)

    @classmethod
    def for_chat(cls, vertical: str | None, messages: list[dict]) -> tuple[RequestPolicy, list[dict], str | None]:
        """(policy, messages to send, refusal text or None)."""
        if vertical is None:
            return cls(None), messages, None
        text = vpolicy.last_user_text(messages)
        p = cls(vertical, lang=vpolicy.detect_lang(text) if text else "en")
        refusal = p._screen_input(messages)
        if refusal is not None:
            return p, messages, refusal
        messages, p.prompt_notes = vpolicy.apply_policy(vertical, messages, p.lang)
        return p, messages, None

    @classmethod
    def for_completion(cls, vertical: str | None, prompts: list[str]) -> tuple[RequestPolicy, str | None]:
        if vertical is None:
            return cls(None), None
        text = "\n".join(prompts)
        p = cls(vertical, lang=vpolicy.detect_lang(text) if text else "en")
        # every prompt of a list is checked: a batch is as much a request as its last member
        return p, p._screen_input([{"role": "user", "content": p_} for p_ in prompts])

    def _screen_input(self, messages: list[dict]) -> str | None:
        """The refusal text when the vertical's input action is refuse; a notice or allow action lets the request
        through, flagged (counted in /metrics, recorded in the audit row's policy field)."""
        started = time.perf_counter()
        found = vpolicy.refusal_rule(self.vertical, messages, self.lang)
        self.guard_seconds += time.perf_counter() - started
        if not found:
            return None
        policy = get_vertical(self.vertical).policy
        action = policy.actions()[0]
        self.input_flag = {"rule": found[0], "action": action}
        if action != "refuse":
            return None
        self.refusal_rule = found[0]
        self.refuse_as_error = policy.guardrails.refuse_as == "error"
        self.applied.append(f"refusal:{found[0]}")
        return found[1]

    def suffix(self, answer: str) -> str:
        """Text appended to an answer (guard notice + notes + disclaimer); records which were applied."""
        if self.vertical is None:
            return ""
        notice = ""
        flags = ([self.input_flag] if self.input_flag else []) + self.output_flags
        if any(f["action"] == "notice" for f in flags) and "guard_notice" not in self.applied:
            notice = "\n\n" + get_vertical(self.vertical).policy.guardrails.notice.get(self.lang)
            self.applied.append("guard_notice")
        suffix = notice + vpolicy.policy_suffix(self.vertical, answer, self.lang, self.prompt_notes)
        if suffix:
            policy = get_vertical(self.vertical).policy
            for note in policy.safety_notes:
                if note.note.get(self.lang) in suffix and note.name not in self.applied:
                    self.applied.append(note.name)
            if policy.disclaimer is not None and policy.disclaimer.get(self.lang) in suffix \
                    and "disclaimer" not in self.applied:
                self.applied.append("disclaimer")
        return suffix

    def audit(self, prompt: str, answer: str | None, secret: bytes | None = None,
              base_text: str = "text") -> dict:
        """Fields the audit row may hold: prompt text + answer, only the prompt's keyed digest, or nothing. Base-model
        calls follow the gateway's audit.base_prompts (text | hash | none); verticals follow their own rules."""
        if self.vertical is None:
            if base_text == "text":
                return {"prompt": prompt, "answer": answer}
            return {"prompt_sha256": vpolicy.prompt_digest(prompt, secret)} if base_text == "hash" else {}
        fields = vpolicy.audit_fields(self.vertical, prompt, secret)
        if "prompt" in fields:
            fields["answer"] = answer
        return fields

    def summary(self) -> dict:
        out = {"lang": self.lang, "notes": self.applied, "refusal": self.refusal_rule}
        if self.input_flag or self.output_flags:   # what the guard saw, for the client and the audit row
            out["guard"] = {"input": self.input_flag, "output": self.output_flags, "review_ids": self.review_ids}
        return out
