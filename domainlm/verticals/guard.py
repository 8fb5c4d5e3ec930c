"""A vertical's output checks as pure functions (the gateway applies the actions: domainlm.serving.guardrails).

    rule = output_rule(policy, answer)           # the first output check whose patterns match, or None
    screen = StreamScreen(policy)                # one streamed answer
    safe = screen.feed(delta)                     # text that may be sent now ("" once a check has fired)
    rest = screen.finish()                        # the held-back tail at the end (checked once more)

A stream is screened by holding back only what could still become a match: text from the leftmost place where some
pattern matches partially up to the end of what has arrived (the `regex` module's partial matching). Any prefix of a
future match is such a partial match, so no character of a match ever leaves the gateway, and ordinary text streams
on at once.
"""

from __future__ import annotations

import regex

from domainlm.verticals.spec import Policy


def output_rule(policy: Policy, text: str) -> str | None:
    """Name of the first output check matching `text` (patterns of both languages: answers mix them), or None."""
    for check in policy.output_checks:
        if check.patterns.search(text, "en") or check.patterns.search(text, "zh"):
            return check.name
    return None


def _hold_from(policy: Policy, text: str) -> tuple[int, str | None]:
    """(where text may still turn into a match, the check already matched or None)."""
    hold = len(text)
    for check in policy.output_checks:
        for pattern in check.patterns.en + check.patterns.zh + check.patterns.any:
            found = regex.search(pattern, text, flags=regex.IGNORECASE, partial=True)
            if found is None:
                continue
            if not found.partial:
                return found.start(), check.name
            hold = min(hold, found.start())
    return hold, None


class StreamScreen:
    """One streamed answer, released up to where it could still become a match."""

    def __init__(self, policy: Policy):
        self.policy = policy
        self.text = ""          # everything the engine sent for this answer
        self.sent = 0           # characters of it released to the client
        self.rule: str | None = None

    def feed(self, delta: str) -> str:
        self.text += delta      # kept after a check fired too: a held answer reaches its reviewer whole
        if self.rule is not None or not delta:
            return ""
        hold, self.rule = _hold_from(self.policy, self.text)
        if self.rule is not None:
            return ""
        end = max(self.sent, hold)
        released, self.sent = self.text[self.sent:end], end
        return released

    def finish(self) -> str:
        """The held-back tail, or "" when a check fires on the whole answer."""
        if self.rule is None:
            self.rule = output_rule(self.policy, self.text)
        if self.rule is not None:
            return ""
        rest, self.sent = self.text[self.sent:], len(self.text)
        return rest
