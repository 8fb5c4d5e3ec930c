"""Rate limits shared by every gateway replica: the same sliding 60 s window as RateLimiter, kept in Redis.

One Lua script admits or refuses atomically (Redis runs scripts one at a time), so N replicas together allow
exactly a key's rpm/tpm, not N times it. Time is Redis's own clock: replicas whose clocks drift still agree.
Per key: a sorted set of reservations (id → admission time), a hash (id → tokens) and the window's token total;
all three expire with the window.
Settling (the estimate replaced by the real count) is queued and sent by one thread, off the request path.
"""

from __future__ import annotations

import queue
import secrets
import threading

import redis

from domainlm.log import get
from domainlm.serving.ratelimit import WINDOW_S, LimiterUnavailable, refusal

logger = get("serving")

ADMIT = """
local times, amounts, total = KEYS[1], KEYS[2], KEYS[3]
local rpm, tpm, estimate, id = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local window = tonumber(ARGV[5])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local used = tonumber(redis.call('GET', total) or '0')
local expired = redis.call('ZRANGEBYSCORE', times, '-inf', now - window)
for i = 1, #expired, 500 do
  local chunk = {unpack(expired, i, math.min(i + 499, #expired))}
  for _, amount in ipairs(redis.call('HMGET', amounts, unpack(chunk))) do used = used - (tonumber(amount) or 0) end
  redis.call('ZREM', times, unpack(chunk))
  redis.call('HDEL', amounts, unpack(chunk))
end
if used < 0 then used = 0 end
redis.call('SET', total, used, 'KEEPTTL')
if redis.call('ZCARD', times) >= rpm then
  local first = redis.call('ZRANGE', times, 0, 0, 'WITHSCORES')
  return {'rpm', tostring(tonumber(first[2]) + window - now)}
end
if estimate > tpm then
  return {'too_big', tostring(window)}
end
if used + estimate > tpm then
  local live = redis.call('ZRANGE', times, 0, -1, 'WITHSCORES')
  local need, wait = used + estimate - tpm, window
  for i = 1, #live, 2 do
    need = need - (tonumber(redis.call('HGET', amounts, live[i])) or 0)
    if need <= 0 then wait = tonumber(live[i + 1]) + window - now; break end
  end
  return {'tpm', tostring(wait)}
end
redis.call('ZADD', times, now, id)
redis.call('HSET', amounts, id, estimate)
local ttl = math.ceil(window * 1000) + 1000
redis.call('SET', total, used + estimate, 'PX', ttl)
redis.call('PEXPIRE', times, ttl)
redis.call('PEXPIRE', amounts, ttl)
return {'ok', '0'}
"""
# only a reservation still in the window is corrected (one that expired is gone, and stays gone)
SETTLE = """
local old = redis.call('HGET', KEYS[1], ARGV[1])
if old then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  redis.call('INCRBY', KEYS[2], tonumber(ARGV[2]) - tonumber(old))
end
return 0
"""


class RedisRateLimiter:
    """Drop-in for RateLimiter (admit / settle) across replicas. Reservations are (key id, reservation id)."""

    remote = True   # admit does a network round trip: callers on an event loop run it in a thread

    def __init__(self, url: str, prefix: str = "dlm:rl", window_s: float = WINDOW_S):
        self.client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5, health_check_interval=30)
        self.prefix = prefix
        self.window_s = window_s
        self._admit = self.client.register_script(ADMIT)
        self._settle = self.client.register_script(SETTLE)
        self._settlements: queue.Queue = queue.Queue(maxsize=100_000)
        self._thread = threading.Thread(target=self._settler, name="ratelimit-settle", daemon=True)
        self._thread.start()

    def _keys(self, key_id: str) -> list[str]:
        """Admission times (sorted set), tokens per reservation (hash), tokens in the window (counter: an
        admission reads one number instead of summing every reservation). One hash tag per API key: the three
        land on the same Redis Cluster slot, as a script needs."""
        tag = f"{self.prefix}:{{{key_id}}}"
        return [f"{tag}:t", f"{tag}:n", f"{tag}:sum"]

    def admit(self, key_id: str, rpm: int, tpm: int, estimated_tokens: int) -> tuple[str, str]:
        reservation = secrets.token_hex(8)
        try:
            answer = self._admit(keys=self._keys(key_id),
                                 args=[rpm, tpm, int(estimated_tokens), reservation, self.window_s])
        except redis.RedisError as exc:
            raise LimiterUnavailable(f"rate limiter unavailable (Redis: {type(exc).__name__}); retry shortly") \
                from None
        verdict, wait = (v.decode() if isinstance(v, bytes) else v for v in answer)
        if verdict != "ok":
            raise refusal(verdict, rpm, tpm, estimated_tokens, max(0.0, float(wait)))
        return key_id, reservation

    def settle(self, reservation: tuple[str, str], actual_tokens: int) -> None:
        try:
            self._settlements.put_nowait((reservation, max(0, int(actual_tokens))))
        except queue.Full:   # the estimate stays: the key is held to at most what it reserved
            pass

    def _settler(self) -> None:
        while True:
            item = self._settlements.get()
            if item is None:
                return
            (key_id, reservation), tokens = item
            try:
                self._settle(keys=self._keys(key_id)[1:], args=[reservation, tokens])
            except redis.RedisError as exc:   # the estimate stays (never more than reserved); logged, not raised
                logger.warning("rate-limit settlement not sent; the estimate stays", error=str(exc))
            finally:
                self._settlements.task_done()

    def drain(self, timeout: float = 5.0) -> None:
        """Wait until every queued settlement is sent (tests, shutdown)."""
        done = threading.Event()
        threading.Thread(target=lambda: (self._settlements.join(), done.set()), daemon=True).start()
        done.wait(timeout)

    def close(self) -> None:
        self.drain()
        self._settlements.put(None)
        self._thread.join(5)
        self.client.close()
