"""Rate limits and news shared through a real Redis (a throwaway redis-server): several limiter objects act as
replicas and together allow exactly a key's limit; a broadcast reaches every subscriber within a second; with
Redis gone the limiter refuses (retriable) instead of letting requests through."""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from domainlm.serving.broadcast import Broadcast, publish_once
from domainlm.serving.ratelimit import LimiterUnavailable, RateLimited
from domainlm.serving.ratelimit_redis import RedisRateLimiter


def _prefix() -> str:
    return f"t{uuid.uuid4().hex[:8]}"   # each test its own keyspace on the session's server


def test_three_replicas_together_allow_exactly_the_rpm(redis_server):
    prefix = _prefix()
    replicas = [RedisRateLimiter(redis_server.url, prefix=prefix) for _ in range(3)]
    admitted, refused = [], []

    def hammer(limiter):
        for _ in range(40):
            try:
                admitted.append(limiter.admit("k1", 50, 10_000_000, 10))
            except RateLimited as exc:
                refused.append(exc.retry_after)

    threads = [threading.Thread(target=hammer, args=(r,)) for r in replicas for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(admitted) == 50 and len(refused) == 240 - 50
    assert all(0 < wait <= 60 for wait in refused)
    replicas[0].admit("k2", 50, 10_000_000, 10)           # limits are per key
    for r in replicas:
        r.close()


def test_tokens_are_reserved_then_settled_across_replicas(redis_server):
    prefix = _prefix()
    a, b = RedisRateLimiter(redis_server.url, prefix=prefix), RedisRateLimiter(redis_server.url, prefix=prefix)
    first = a.admit("k", 100, 1000, 800)                      # reserves 800 of 1000
    with pytest.raises(RateLimited, match="1000 tokens per minute"):
        b.admit("k", 100, 1000, 300)                          # the other replica sees the reservation
    a.settle(first, 100)                                      # the answer used 100
    a.drain()
    b.admit("k", 100, 1000, 300)
    with pytest.raises(RateLimited, match="more than this key's limit"):
        b.admit("k", 100, 1000, 5000)
    a.close()
    b.close()


def test_the_window_slides_for_requests_and_tokens(redis_server):
    limiter = RedisRateLimiter(redis_server.url, prefix=_prefix(), window_s=1.0)
    for _ in range(3):
        limiter.admit("k", 3, 1000, 1)
    with pytest.raises(RateLimited) as refused:
        limiter.admit("k", 3, 1000, 1)
    assert 0 < refused.value.retry_after <= 1.0
    time.sleep(refused.value.retry_after + 0.05)
    limiter.admit("k", 3, 1000, 1)
    limiter.admit("t", 100, 100, 60)
    limiter.admit("t", 100, 100, 40)
    with pytest.raises(RateLimited, match="100 tokens per minute") as refused:
        limiter.admit("t", 100, 100, 1)
    time.sleep(refused.value.retry_after + 0.05)
    limiter.admit("t", 100, 100, 100)      # the expired reservations left the window's total
    limiter.close()


def test_three_replicas_together_allow_exactly_the_tpm(redis_server):
    prefix = _prefix()
    replicas = [RedisRateLimiter(redis_server.url, prefix=prefix) for _ in range(3)]
    admitted = []

    def hammer(limiter):
        for _ in range(30):
            try:
                admitted.append(limiter.admit("k", 10_000, 500, 10))
            except RateLimited:
                pass

    threads = [threading.Thread(target=hammer, args=(r,)) for r in replicas for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(admitted) == 50
    for r in replicas:
        r.close()


def test_broadcast_reaches_every_replica_within_a_second(redis_server):
    got: list[list[dict]] = [[], []]
    channel = f"{_prefix()}:events"
    replicas = [Broadcast(redis_server.url, got[i].append, channel=channel) for i in range(2)]
    for r in replicas:
        assert r.subscribed.wait(5)
    sent = time.monotonic()
    assert replicas[0].publish("key_revoked", id="abcd") == 2
    while not all(any(e.get("id") == "abcd" for e in events) for events in got):
        assert time.monotonic() - sent < 1.0, got
        time.sleep(0.005)
    assert all(events[0] == {"kind": "resync"} for events in got)   # every subscription starts by resyncing
    for r in replicas:
        r.close()


def test_without_redis_the_limiter_refuses_and_the_broadcast_says_so():
    from domainlm.state.throwaway import ThrowawayRedis

    with ThrowawayRedis() as server:
        limiter = RedisRateLimiter(server.url, prefix=_prefix())
        limiter.admit("k", 10, 1000, 1)
        url = server.url
    with pytest.raises(LimiterUnavailable, match="retry"):
        limiter.admit("k", 10, 1000, 1)
    assert publish_once(url, "key_revoked", id="x") == -1
    limiter.close()
