"""A replica is one vLLM OpenAI server (managed process or remote URL); a pool is the replicas serving the same names.

Routing picks the healthy replica with the fewest requests in flight (ties rotate), which is least-loaded routing
measured where it matters: at the gateway, without polling the servers.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field

from domainlm.serving.engines.base import Adapter
from domainlm.serving.engines.vllm_process import ProcessSpec, VllmProcess


@dataclass(eq=False)
class Replica:
    url: str                                  # http://host:port (no trailing slash)
    process: VllmProcess | None = None        # None: a remote server we attach to and cannot restart
    api_key: str | None = None                # the server's --api-key / VLLM_API_KEY (guards its /v1 routes)
    healthy: bool = False
    inflight: int = 0
    served: int = 0                           # requests routed here (for status and tests)
    restarts: int = 0
    consecutive_failures: int = 0
    last_error: str = ""
    restart_at: float = 0.0                   # monotonic time of the next allowed restart
    backoff_s: float = 2.0
    healthy_since: float = 0.0

    @property
    def managed(self) -> bool:
        return self.process is not None

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def mark_down(self, why: str) -> None:
        self.healthy = False
        self.last_error = why

    def status(self) -> dict:
        return {"url": self.url, "healthy": self.healthy, "inflight": self.inflight, "served": self.served,
                "managed": self.managed, "pid": self.process.pid if self.process else None,
                "restarts": self.restarts, "last_error": self.last_error}


@dataclass(eq=False)
class Pool:
    """Replicas that all serve `base_name` and, for a LoRA pool, the adapters in `adapters`."""

    key: str                                  # "lora" or the adapter name of a merged pool
    base_name: str                            # name the pool's model is served under
    lora: bool                                # True: adapters are loaded into these replicas at run time
    spec: ProcessSpec | None                  # template for managed replicas (None: remote-only pool)
    replicas: list[Replica] = field(default_factory=list)
    adapters: dict[str, Adapter] = field(default_factory=dict)  # desired adapters (kept across restarts)
    _turn: itertools.count = field(default_factory=itertools.count)

    def names(self) -> set[str]:
        return {self.base_name, *self.adapters}

    def pick(self, exclude: set[int] = frozenset()) -> Replica | None:
        candidates = [r for r in self.replicas if r.healthy and id(r) not in exclude]
        if not candidates:
            return None
        low = min(r.inflight for r in candidates)
        least = [r for r in candidates if r.inflight == low]
        return least[next(self._turn) % len(least)]

    def ready(self) -> bool:
        return any(r.healthy for r in self.replicas)

    def status(self) -> dict:
        return {"base_name": self.base_name, "lora": self.lora, "adapters": sorted(self.adapters),
                "replicas": [r.status() for r in self.replicas]}


def now() -> float:
    return time.monotonic()
