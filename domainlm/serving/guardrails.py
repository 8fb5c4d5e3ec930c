"""The gateway's output guard: a vertical's output checks on every answer, the action its risk class (or its own
`guardrails:` block) names, and the counters /metrics exposes. Input checks run in serving/policy.py (the refusal
patterns); both land in the same metrics and in the audit row's policy field.

    text, replaced = guard.screen_answer(call, text, choice)   # a whole answer (JSON responses)
    screen = guard.stream_screen(call)                          # a streamed answer (None: nothing to check)
    text = guard.act(call, screen.rule, screen.text, choice, defer_hold=True)

Actions on an answer: allow (counted), notice (the notice appended), refuse (a safe completion ending with
finish_reason "content_filter"), hold (the same, with a review id; the answer waits in serving/review.py).
"""

from __future__ import annotations

import secrets
import time

from domainlm.serving.call import Call
from domainlm.verticals import get_vertical
from domainlm.verticals.guard import StreamScreen, output_rule
from domainlm.verticals.refusal import is_refusal
from domainlm.verticals.spec import Policy


class Guard:
    def __init__(self, service):
        self.service = service      # GatewayService: metrics, reviews

    @staticmethod
    def _policy(call: Call) -> Policy | None:
        vertical = call.policy.vertical if call.policy else None
        if vertical is None:
            return None
        policy = get_vertical(vertical).policy
        return policy if policy.output_checks else None

    def screen_answer(self, call: Call, text: str, choice: int = 0) -> tuple[str, bool]:
        """(text to deliver, whether a check replaced it) for one whole answer."""
        policy = self._policy(call)
        if policy is None:
            return text, False
        started = time.perf_counter()
        rule = output_rule(policy, text)
        call.policy.guard_seconds += time.perf_counter() - started
        if rule is None:
            return text, False
        return self.act(call, rule, text, choice)

    def stream_screen(self, call: Call) -> StreamScreen | None:
        policy = self._policy(call)
        return StreamScreen(policy) if policy else None

    def act(self, call: Call, rule: str, text: str, choice: int = 0, defer_hold: bool = False) -> tuple[str, bool]:
        """Apply the vertical's output action to an answer a check fired on: (text to deliver, replaced?).
        defer_hold: a stream's review id is handed out now and its row written by `hold_later` once the engine
        has finished the answer (the reviewer sees all of it)."""
        policy = get_vertical(call.policy.vertical).policy
        action = policy.actions()[1]
        call.policy.output_flags.append({"rule": rule, "action": action, "choice": choice})
        self.service.metrics.guard_outputs.labels(vertical=call.vertical, rule=rule, action=action).inc()
        lang = call.policy.lang
        if action in ("allow", "notice"):
            return text, False      # a notice is appended with the policy's suffix
        if action == "refuse":
            return policy.guardrails.blocked.get(lang), True
        review_id = f"rev-{secrets.token_hex(8)}"
        if not defer_hold:
            self.hold_later(call, review_id, rule, text)
        call.policy.review_ids.append(review_id)
        return policy.guardrails.held.get(lang).format(id=review_id), True

    def hold_later(self, call: Call, review_id: str, rule: str, text: str) -> None:
        self.service.reviews.hold(call.request_id, call.key.id if call.key else None, call.policy.vertical,
                                  call.model, rule, text, review_id=review_id)

    def observe(self, call: Call) -> None:
        """Once per request (GatewayService.finish): the guard's counters for a vertical's request."""
        policy = call.policy
        if policy is None or policy.vertical is None:
            return
        m, vertical = self.service.metrics, call.vertical
        if policy.input_flag:
            m.guard_inputs.labels(vertical=vertical, rule=policy.input_flag["rule"],
                                  action=policy.input_flag["action"]).inc()
        m.guard_seconds.labels(vertical=vertical).observe(policy.guard_seconds)
        if call.status >= 400 and not policy.refusal_rule:
            return
        m.answers.labels(vertical=vertical, verdict=verdict(call)).inc()


def verdict(call: Call) -> str:
    """What the client got: gateway_refusal, held, blocked, model_refusal (the model declined by itself: the
    offline refusal rules of the safety suites, on its opening) or answered. A drift in these shares is what
    the alert rules watch."""
    policy = call.policy
    if policy.refusal_rule:
        return "gateway_refusal"
    replaced = [f for f in policy.output_flags if f["action"] in ("refuse", "hold")]
    if replaced:
        return "held" if any(f["action"] == "hold" for f in replaced) else "blocked"
    return "model_refusal" if is_refusal(call.answer) else "answered"
