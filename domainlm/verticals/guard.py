"""A vertical's output checks as pure functions (the gateway applies the actions: domainlm.serving.guardrails).

    rule = output_rule(policy, answer)           # the first output check whose patterns match, or None
    screen = StreamScreen(policy, window=256)    # one streamed answer
    safe = screen.feed(delta)                     # text that may be sent now ("" once a check has fired)
    rest = screen.finish()                        # the held-back tail at the end (checked once more)

A stream is screened by holding back the newest `window` characters: a check whose match spans at most that many
characters fires before any character of the match has left the gateway.
"""

from __future__ import annotations

from domainlm.verticals.spec import Policy


def output_rule(policy: Policy, text: str) -> str | None:
    """Name of the first output check matching `text` (patterns of both languages: answers mix them), or None."""
    for check in policy.output_checks:
        if check.patterns.search(text, "en") or check.patterns.search(text, "zh"):
            return check.name
    return None


class StreamScreen:
    """One streamed answer, released `window` characters behind the newest text."""

    def __init__(self, policy: Policy, window: int):
        self.policy, self.window = policy, window
        self.text = ""          # everything the engine sent for this answer
        self.sent = 0           # characters of it released to the client
        self.rule: str | None = None

    def feed(self, delta: str) -> str:
        self.text += delta      # kept after a check fired too: a held answer reaches its reviewer whole
        if self.rule is not None or not delta:
            return ""
        self.rule = output_rule(self.policy, self.text)
        if self.rule is not None:
            return ""
        end = max(self.sent, len(self.text) - self.window)
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
