"""Server-sent events: split an upstream byte stream into `data:` payloads, and frame payloads for the client."""

from __future__ import annotations

from collections.abc import AsyncIterator

DONE = b"[DONE]"


async def data_payloads(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """Yield each event's data payload (without `data: `); stops at [DONE]. Tolerates \\r\\n and split chunks."""
    buffer = b""
    async for chunk in chunks:
        buffer += chunk
        if b"\r" in buffer:
            buffer = buffer.replace(b"\r\n", b"\n")
        while True:
            end = buffer.find(b"\n\n")
            if end < 0:
                break
            event, buffer = buffer[:end], buffer[end + 2:]
            for line in event.split(b"\n"):
                if line.startswith(b"data:"):
                    payload = line[5:].lstrip(b" ")
                    if payload == DONE:
                        return
                    yield payload


def frame(payload: bytes) -> bytes:
    return b"data: " + payload + b"\n\n"


DONE_FRAME = b"data: [DONE]\n\n"
