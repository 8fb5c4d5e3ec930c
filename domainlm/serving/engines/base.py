"""The engine contract the serving class calls. An engine serves one base model plus LoRA adapters by name.

Requests and responses are OpenAI-shaped dicts whose `model` is the engine-side name (the base's served name or an
adapter name such as `medical@3`). Streams yield the JSON payload of each SSE event (bytes, no `data: ` prefix,
no `[DONE]`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class Adapter:
    name: str           # engine-side name, e.g. medical@3
    path: Path          # verified artifact folder
    vertical: str
    version: int
    artifact_id: str


class EngineUnavailable(Exception):
    """No replica can take the request now; the gateway answers 503 with Retry-After."""

    def __init__(self, message: str, retry_after: float = 5.0):
        super().__init__(message)
        self.retry_after = retry_after


class UpstreamError(Exception):
    """The engine refused the request (4xx from vLLM, bad sampling values): passed to the client as is."""

    def __init__(self, status: int, body: dict):
        super().__init__(str(body))
        self.status = status
        self.body = body


class Engine(Protocol):
    base_name: str          # the base model's public name
    max_model_len: int      # context length (prompt + completion tokens)

    async def start(self, adapters: list[Adapter]) -> None: ...
    async def stop(self) -> None: ...
    def ready(self) -> bool: ...
    def status(self) -> dict: ...
    def loaded(self) -> set[str]: ...
    async def request(self, route: str, body: dict) -> dict: ...             # route: "chat" | "completions"
    def stream(self, route: str, body: dict) -> AsyncIterator[bytes]: ...
    async def load_adapter(self, adapter: Adapter) -> None: ...            # all replicas; raises if it did not take
    async def unload_adapter(self, name: str) -> None: ...
