"""The gateway's use of a vertical's policy (domainlm.verticals.policy): one object per request.

Chat requests get the vertical's system prompt in the request's language, refusals and safety notes; completions
(the raw-text and scoring interface: echo/logprobs) get refusals and logging rules but no appended text, which
would change what is being scored. The audit keeps only what the vertical's logging rules allow.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from domainlm.verticals import get_vertical
from domainlm.verticals import policy as vpolicy


@dataclass
class RequestPolicy:
    vertical: str | None
    lang: str = "en"
    prompt_notes: list[str] = field(default_factory=list)   # triggered by the prompt (known before generation)
    applied: list[str] = field(default_factory=list)        # every note/disclaimer appended to an answer
    refusal_rule: str | None = None

    @classmethod
    def for_chat(cls, vertical: str | None, messages: list[dict]) -> tuple[RequestPolicy, list[dict], str | None]:
        """(policy, messages to send, refusal text or None)."""
        if vertical is None:
            return cls(None), messages, None
        text = vpolicy.last_user_text(messages)
        p = cls(vertical, lang=vpolicy.detect_lang(text) if text else "en")
        refusal = vpolicy.refusal_rule(vertical, messages, p.lang)
        if refusal:
            p.refusal_rule = refusal[0]
            p.applied.append(f"refusal:{refusal[0]}")
            return p, messages, refusal[1]
        messages, p.prompt_notes = vpolicy.apply_policy(vertical, messages, p.lang)
        return p, messages, None

    @classmethod
    def for_completion(cls, vertical: str | None, prompts: list[str]) -> tuple[RequestPolicy, str | None]:
        if vertical is None:
            return cls(None), None
        text = "\n".join(prompts)
        p = cls(vertical, lang=vpolicy.detect_lang(text) if text else "en")
        # every prompt of a list is checked: a batch is as much a request as its last member
        refusal = vpolicy.refusal_rule(vertical, [{"role": "user", "content": p_} for p_ in prompts], p.lang)
        if refusal:
            p.refusal_rule = refusal[0]
            p.applied.append(f"refusal:{refusal[0]}")
            return p, refusal[1]
        return p, None

    def suffix(self, answer: str) -> str:
        """Text appended to an answer (notes + disclaimer); records which were applied."""
        if self.vertical is None:
            return ""
        suffix = vpolicy.policy_suffix(self.vertical, answer, self.lang, self.prompt_notes)
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
        return {"lang": self.lang, "notes": self.applied, "refusal": self.refusal_rule}
