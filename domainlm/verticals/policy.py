"""Apply a vertical's policy (data in its vertical.yaml) to a chat request and its answer. The gateway calls:

    refusal = check_refusal(v, messages)             # str → answer with it, do not call the model
    messages, notes = apply_policy(v, messages)      # the vertical's system prompt first; prompt-triggered notes
    answer = post_process(v, answer, notes=notes)    # notes + disclaimer appended (streaming: policy_suffix)
    audit_fields(v, prompt_text)                     # what the audit log may keep of the prompt

Language: `lang=None` detects zh/en from the text (share of CJK characters), so a Chinese question gets the Chinese
system prompt, notes and disclaimer.
"""

from __future__ import annotations

import hashlib
import hmac

from domainlm.hashing import sha256_bytes
from domainlm.verticals.spec import Note, Policy
from domainlm.data.text import detect_lang

__all__ = ["apply_policy", "audit_fields", "check_refusal", "detect_lang", "last_user_text", "policy_suffix",
           "post_process", "refusal_rule"]


def _vertical(vertical):
    if isinstance(vertical, str):
        from domainlm.verticals import get_vertical

        return get_vertical(vertical)
    return vertical


def _content(message: dict) -> str:
    content = message.get("content")
    if isinstance(content, list):  # OpenAI content parts: keep the text parts
        return "\n".join(p.get("text", "") for p in content if isinstance(p, dict))
    return str(content or "")


def last_user_text(messages: list[dict]) -> str:
    return next((_content(m) for m in reversed(messages) if m.get("role") == "user"), "")


def _lang(lang: str | None, text: str) -> str:
    return lang if lang in ("en", "zh") else detect_lang(text)


def _checked_texts(policy: Policy, messages: list[dict]) -> list[str]:
    """Every user and system message a refusal rule must see. A harmful request earlier in the chat still steers
    the model, so it counts too, unless the gateway already refused it: the next message is one of this vertical's
    refusal texts, verbatim (a client keeping its history can go on after a refusal)."""
    refusals = {rule.message.get(lang).strip() for rule in policy.refusals for lang in ("en", "zh")}
    texts = []
    for index, message in enumerate(messages):
        if message.get("role") not in ("user", "system"):
            continue
        following = messages[index + 1] if index + 1 < len(messages) else None
        if following is not None and following.get("role") == "assistant" \
                and _content(following).strip() in refusals:
            continue
        texts.append(_content(message))
    return texts


def refusal_rule(vertical, messages: list[dict], lang: str | None = None) -> tuple[str, str] | None:
    """(rule name, refusal text) when any user or system message matches a refusal rule, else None."""
    policy: Policy = _vertical(vertical).policy
    lang = _lang(lang, last_user_text(messages))
    for text in _checked_texts(policy, messages):
        for rule in policy.refusals:
            # patterns of both languages apply: a Chinese request may carry English terms and vice versa
            if rule.patterns.search(text, "en") or rule.patterns.search(text, "zh"):
                return rule.name, rule.message.get(lang)
    return None


def check_refusal(vertical, messages: list[dict], lang: str | None = None) -> str | None:
    """The refusal text to answer with, or None when the request may go to the model."""
    found = refusal_rule(vertical, messages, lang)
    return found[1] if found else None


def _triggered(note: Note, text: str) -> bool:
    return bool(note.triggers.search(text, "en") or note.triggers.search(text, "zh"))


def apply_policy(vertical, messages: list[dict], lang: str | None = None) -> tuple[list[dict], list[str]]:
    """(messages with the vertical's system prompt first, names of prompt-triggered notes). A client's own system
    messages follow it: they add instructions, they cannot replace the vertical's."""
    v = _vertical(vertical)
    text = last_user_text(messages)
    lang = _lang(lang, text)
    out = [{"role": "system", "content": v.system_prompt(lang)}, *(dict(m) for m in messages)]
    notes = [n.name for n in v.policy.safety_notes if n.scope in ("prompt", "either") and _triggered(n, text)]
    return out, notes


def policy_suffix(vertical, text: str, lang: str | None = None, notes: list[str] | tuple = ()) -> str:
    """The text to append to an answer: triggered safety notes, then the disclaimer ("" when none apply).

    A note fires when it was triggered by the prompt (`notes` from apply_policy) or its answer-scope triggers
    match `text`, unless the answer already says what the note says (`unless` patterns, or the note itself).
    """
    policy: Policy = _vertical(vertical).policy
    lang = _lang(lang, text)
    parts = []
    for note in policy.safety_notes:
        fired = note.name in notes or (note.scope in ("answer", "either") and _triggered(note, text))
        body = note.note.get(lang)
        already = body in text or note.unless.search(text, "en") or note.unless.search(text, "zh")
        if fired and not already:
            parts.append(body)
    if policy.disclaimer_mode == "always" and policy.disclaimer is not None:
        disclaimer = policy.disclaimer.get(lang)
        if disclaimer not in text:
            parts.append(disclaimer)
    return "".join(f"\n\n{p}" for p in parts)


def post_process(vertical, text: str, lang: str | None = None, notes: list[str] | tuple = ()) -> str:
    """The answer with safety notes and disclaimer appended where the policy says so."""
    return text + policy_suffix(vertical, text, lang, notes)


def prompt_digest(prompt: str, secret: bytes | None) -> str:
    """HMAC-SHA256 of the prompt under the gateway's secret (a plain sha256 of a short prompt is reversed by trying
    likely prompts; without the secret an HMAC is not); plain sha256 only where no secret is given."""
    if secret is None:
        return sha256_bytes(prompt)
    return hmac.new(secret, prompt.encode("utf-8"), hashlib.sha256).hexdigest()


def audit_fields(vertical, prompt: str, secret: bytes | None = None) -> dict:
    """What an audit/log record may keep of a prompt: the text, only its keyed digest (`prompt_digest`), or
    nothing. The column keeps its name, prompt_sha256: an HMAC-SHA256 is 64 hex characters too."""
    policy: Policy = _vertical(vertical).policy
    if policy.log_prompts:
        return {"prompt": prompt}
    return {"prompt_sha256": prompt_digest(prompt, secret)} if policy.hash_prompts else {}
