"""Per-key rate limits over a sliding 60 s window: requests per minute and tokens (prompt + completion) per minute.

A request reserves its estimated tokens (prompt estimate + max_tokens) when admitted; the reservation is replaced
by the real count when the answer is done, so a burst of long requests cannot overrun the token budget.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

WINDOW_S = 60.0


class RateLimited(Exception):
    def __init__(self, message: str, retry_after: float):
        super().__init__(message)
        self.retry_after = retry_after


def refusal(verdict: str, rpm: int, tpm: int, estimated_tokens: int, wait: float) -> RateLimited:
    """The one wording of each refusal, whichever limiter decided it: verdict `rpm`, `too_big` or `tpm`."""
    if verdict == "rpm":
        return RateLimited(f"rate limit reached: {rpm} requests per minute for this key", wait)
    if verdict == "too_big":
        return RateLimited(f"this request may use {estimated_tokens} tokens, more than this key's limit of "
                           f"{tpm} tokens per minute: lower max_tokens", wait)
    return RateLimited(f"rate limit reached: {tpm} tokens per minute for this key", wait)


class LimiterUnavailable(Exception):
    """The shared limiter (Redis) cannot be asked: the request is refused with a retriable 503, never let through."""


@dataclass
class _Bucket:
    requests: deque = field(default_factory=deque)   # admission times
    tokens: deque = field(default_factory=deque)     # [time, tokens] (lists, so a reservation can be corrected)

    def trim(self, now: float) -> None:
        while self.requests and self.requests[0] <= now - WINDOW_S:
            self.requests.popleft()
        while self.tokens and self.tokens[0][0] <= now - WINDOW_S:
            self.tokens.popleft()


class RateLimiter:
    def __init__(self, clock=time.monotonic):
        self._buckets: dict[str, _Bucket] = {}
        self._clock = clock

    def admit(self, key_id: str, rpm: int, tpm: int, estimated_tokens: int) -> list:
        """Admit one request or raise RateLimited with the seconds until it would fit. Returns a reservation."""
        now = self._clock()
        bucket = self._buckets.setdefault(key_id, _Bucket())
        bucket.trim(now)
        if len(bucket.requests) >= rpm:
            raise refusal("rpm", rpm, tpm, estimated_tokens, bucket.requests[0] + WINDOW_S - now)
        if estimated_tokens > tpm:
            raise refusal("too_big", rpm, tpm, estimated_tokens, WINDOW_S)
        used = sum(t[1] for t in bucket.tokens)
        if used + estimated_tokens > tpm:
            need, wait = used + estimated_tokens - tpm, WINDOW_S
            for stamp, tokens in bucket.tokens:  # the earliest moment enough old tokens leave the window
                need -= tokens
                if need <= 0:
                    wait = stamp + WINDOW_S - now
                    break
            raise refusal("tpm", rpm, tpm, estimated_tokens, wait)
        bucket.requests.append(now)
        reservation = [now, estimated_tokens]
        bucket.tokens.append(reservation)
        return reservation

    @staticmethod
    def settle(reservation: list, actual_tokens: int) -> None:
        """Replace the estimate with what the request really used."""
        reservation[1] = max(0, int(actual_tokens))
