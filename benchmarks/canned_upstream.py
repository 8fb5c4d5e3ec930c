"""A canned OpenAI-compatible upstream for gateway benchmarks: answers at once, with no model, so what is measured
is the gateway (auth, limits, policy, relay, audit), not generation.

    python benchmarks/canned_upstream.py --port 18500 --base smollm2-135m [--tokens 8]

Speaks the parts of vLLM's server the gateway uses: /health, /v1/models (adapters with `parent` and `root`),
/v1/load_lora_adapter, /v1/unload_lora_adapter, /v1/chat/completions and /v1/completions (JSON and SSE with usage).
Never a stand-in for vLLM in a test of serving itself: the benchmarks that need real generation start real vLLM.
"""

from __future__ import annotations

import argparse
import json
import time
import uuid

from aiohttp import web


def make_app(base: str, tokens: int, max_model_len: int) -> web.Application:
    adapters: dict[str, str] = {}

    async def health(_request):
        return web.Response(text="")

    async def models(_request):
        cards = [{"id": base, "object": "model", "root": base, "parent": None, "max_model_len": max_model_len}]
        cards += [{"id": name, "object": "model", "root": root, "parent": base, "max_model_len": max_model_len}
                  for name, root in adapters.items()]
        return web.json_response({"object": "list", "data": cards})

    async def load(request):
        body = await request.json()
        adapters[body["lora_name"]] = body["lora_path"]
        return web.Response(text=f"loaded {body['lora_name']}")

    async def unload(request):
        adapters.pop((await request.json()).get("lora_name"), None)
        return web.Response(text="unloaded")

    async def answer(request):
        body = await request.json()
        chat = request.path.endswith("chat/completions")
        rid, created, model = f"cmpl-{uuid.uuid4().hex[:16]}", int(time.time()), body.get("model", base)
        n = min(int(body.get("max_tokens") or tokens), tokens)
        usage = {"prompt_tokens": 12, "completion_tokens": n, "total_tokens": 12 + n}
        if not body.get("stream"):
            choice = {"index": 0, "finish_reason": "length",
                      **({"message": {"role": "assistant", "content": " ok" * n}} if chat else {"text": " ok" * n})}
            return web.json_response({"id": rid, "object": "chat.completion" if chat else "text_completion",
                                      "created": created, "model": model, "choices": [choice], "usage": usage})
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        kind = "chat.completion.chunk" if chat else "text_completion"
        for i in range(n):
            delta = {"delta": {"content": " ok", **({"role": "assistant"} if i == 0 else {})}} if chat \
                else {"text": " ok"}
            chunk = {"id": rid, "object": kind, "created": created, "model": model,
                     "choices": [{"index": 0, "finish_reason": "length" if i == n - 1 else None, **delta}]}
            await response.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
        final = {"id": rid, "object": kind, "created": created, "model": model, "choices": [], "usage": usage}
        await response.write(b"data: " + json.dumps(final).encode() + b"\n\ndata: [DONE]\n\n")
        await response.write_eof()
        return response

    app = web.Application()
    app.add_routes([web.get("/health", health), web.get("/v1/models", models),
                    web.post("/v1/load_lora_adapter", load), web.post("/v1/unload_lora_adapter", unload),
                    web.post("/v1/chat/completions", answer), web.post("/v1/completions", answer)])
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--base", default="smollm2-135m")
    parser.add_argument("--tokens", type=int, default=8)
    parser.add_argument("--max-model-len", type=int, default=2048)
    args = parser.parse_args()
    web.run_app(make_app(args.base, args.tokens, args.max_model_len), host="127.0.0.1", port=args.port,
                print=None, access_log=None)


if __name__ == "__main__":
    main()
