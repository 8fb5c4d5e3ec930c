"""One request's bookkeeping as it passes admission, the engine and accounting (closed exactly once)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from domainlm.serving.auth import ApiKey
from domainlm.serving.policy import RequestPolicy
from domainlm.serving.router import Route


@dataclass
class Call:
    endpoint: str
    request_id: str
    started: float = field(default_factory=time.perf_counter)
    key: ApiKey | None = None
    model: str | None = None
    route: Route | None = None
    status: int = 200
    error: str | None = None
    stream: bool = False
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    prompt_text: str = ""
    answer: str | None = None
    policy: RequestPolicy | None = None
    reservation: list | None = None
    audited: bool = True                      # False: counted in metrics, no audit row (repeated auth failures)
    closed: bool = False

    @property
    def vertical(self) -> str:
        return (self.route.vertical or "base") if self.route else "unknown"

    def count_usage(self, usage: dict | None) -> None:
        """The engine's token counts (settled against the key's reservation when the call closes)."""
        if usage:
            self.prompt_tokens = usage.get("prompt_tokens")
            self.completion_tokens = usage.get("completion_tokens")

    def headers(self) -> dict[str, str]:
        """The gateway's response headers for this call."""
        headers = {"x-request-id": self.request_id}
        if self.route:
            headers["x-domainlm-adapter"] = self.route.public
        if self.policy and (self.policy.applied or self.policy.prompt_notes):
            # streams send headers first: there they list the notes the prompt triggered; the final chunk has all
            headers["x-domainlm-policy-notes"] = ",".join(self.policy.applied or self.policy.prompt_notes)
        return headers
