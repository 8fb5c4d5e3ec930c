"""Replica-to-replica news over Redis pub/sub: a key was revoked, a vertical was suspended or resumed.

Each replica drops the matching cache the moment the message arrives, so the change holds everywhere at once
instead of at the next database read (≤ 1 s). Messages carry ids and names only, never a secret. A replica that
loses Redis resubscribes and drops all its caches (it may have missed news meanwhile); the database stays the
truth, so a lost message costs at most the polling delay.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Callable

import redis

from domainlm.log import get

logger = get("serving")
CHANNEL = "dlm:events"
RESYNC = {"kind": "resync"}   # delivered locally after every (re)subscription


class Broadcast:
    def __init__(self, url: str, on_event: Callable[[dict], None], channel: str = CHANNEL):
        self.client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self.origin = secrets.token_hex(6)   # events this process sent come back marked "mine"
        self.channel = channel
        self.on_event = on_event
        self.subscribed = threading.Event()
        self._closed = False
        self._thread = threading.Thread(target=self._listen, name="broadcast", daemon=True)
        self._thread.start()

    def publish(self, kind: str, **fields) -> int:
        """Send one event to every replica (this one included); returns how many subscribers got it."""
        try:
            return int(self.client.publish(self.channel, json.dumps({"kind": kind, **fields,
                                                                     "origin": self.origin})))
        except redis.RedisError as exc:   # the database already holds the change; replicas see it by polling
            logger.warning("broadcast not sent; replicas catch up by polling", kind=kind, error=str(exc))
            return 0

    def _listen(self) -> None:
        pubsub = None
        while not self._closed:
            try:
                if pubsub is None:
                    pubsub = self.client.pubsub(ignore_subscribe_messages=True)
                    pubsub.subscribe(self.channel)
                    self.on_event(RESYNC)
                    self.subscribed.set()
                message = pubsub.get_message(timeout=0.5)
                if message and message.get("type") == "message":
                    event = json.loads(message["data"])
                    event["mine"] = event.pop("origin", None) == self.origin
                    self.on_event(event)
            except (redis.RedisError, OSError) as exc:
                self.subscribed.clear()
                logger.warning("broadcast subscription lost; retrying", error=str(exc))
                try:
                    pubsub.close()
                except Exception:   # noqa: BLE001 - a broken connection may fail to close; it is dropped anyway
                    pass
                pubsub = None
                time.sleep(0.5)
            except ValueError:   # not JSON: someone else's message on our channel
                continue
        if pubsub is not None:
            pubsub.close()

    def close(self) -> None:
        self._closed = True
        self._thread.join(2)
        self.client.close()


def publish_once(url: str, kind: str, **fields) -> int:
    """One event from a process that does not listen (the CLI): subscribers reached, or -1 if Redis is away."""
    client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
    try:
        return int(client.publish(CHANNEL, json.dumps({"kind": kind, **fields})))
    except redis.RedisError as exc:
        logger.warning("broadcast not sent", kind=kind, error=str(exc))
        return -1
    finally:
        client.close()
