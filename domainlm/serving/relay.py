"""After admission: the engine call and its answer back to the client (JSON or SSE), with the vertical's policy
applied to the answer, usage counted, and the call closed exactly once; refusals answer without an engine."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator

from pydantic import BaseModel
from starlette.responses import Response, StreamingResponse

from domainlm.serving.call import Call
from domainlm.serving.engines.base import EngineUnavailable, UpstreamError
from domainlm.serving.engines.sse import DONE_FRAME, frame
from domainlm.serving.errors import APIError, unavailable
from domainlm.serving.protocol import (AssistantMessage, ChatChoice, ChatChunkChoice, ChatCompletion,
                                       ChatCompletionChunk, ChatDelta, Completion, CompletionChoice, DomainlmInfo,
                                       Usage, openai_dict)
from domainlm.serving.router import Route
from domainlm.serving.stream_filter import StreamFilter

REVOCATION_CHECK_S = 1.0      # a key revoked mid-stream stops its streams within about this long


def _echoed(req, kind: str):
    """choice index → the prompt a completions answer starts with when echo is on ("" otherwise): output checks
    read the generated text, not the caller's own prompt."""
    if kind != "completions" or not getattr(req, "echo", False):
        return lambda index: ""
    prompts, n = req.prompts(), max(1, req.n)
    return lambda index: prompts[index // n] if index // n < len(prompts) else ""


def upstream_api_error(exc: UpstreamError) -> APIError:
    """An engine's 4xx/5xx in the gateway's error shape (message kept, type normalised to OpenAI's)."""
    error = exc.body.get("error") if isinstance(exc.body, dict) else None
    error = error if isinstance(error, dict) else {}
    code = error.get("code")
    return APIError(exc.status, str(error.get("message") or "the engine refused the request"),
                    param=error.get("param"), code=code if isinstance(code, str) else None)


def _json(model: BaseModel) -> bytes:
    return json.dumps(openai_dict(model), ensure_ascii=False).encode()


class EngineRelay:
    def __init__(self, service):
        self.service = service      # GatewayService: metrics, keys (revocation), finish()

    async def dispatch(self, call: Call, route: Route, kind: str, body: dict, req) -> Response:
        try:
            if not req.stream:
                result = await route.engine.request(kind, body)
                return await self._complete(call, route, kind, result, req)
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}  # the gateway counts tokens; the client may not want it
            stream = route.engine.stream(kind, body)
            first = await anext(stream, None)  # engine errors before the first byte become proper HTTP errors
        except EngineUnavailable as exc:
            raise unavailable(str(exc), exc.retry_after) from None
        except UpstreamError as exc:
            raise upstream_api_error(exc) from None
        include_usage = bool(req.stream_options and req.stream_options.include_usage)
        filtered = StreamFilter(self.service, call, kind, _echoed(req, kind)) if call.policy.vertical else None
        return StreamingResponse(self._relay(call, stream, first, include_usage, filtered),
                                 media_type="text/event-stream", headers=call.headers())

    async def _complete(self, call: Call, route: Route, kind: str, result: dict, req) -> Response:
        # engines answer in OpenAI's JSON; passed through as is (vendor fields kept), with the vertical's output
        # checks and the policy's suffix
        result["model"] = route.public
        answers = []
        guard, vertical = self.service.guard, call.policy.vertical
        echoed = _echoed(req, kind)
        for position, choice in enumerate(result.get("choices", [])):
            index = choice.get("index", position)
            if kind == "chat":
                message = choice.get("message") or {}
                text = message.get("content") or ""
                if vertical:
                    text, replaced = guard.screen_answer(call, text, index)
                    if replaced:
                        choice["finish_reason"], choice["logprobs"] = "content_filter", None
                    text += call.policy.suffix(text) if not replaced else ""
                message["content"] = text
                answers.append(text)
            else:
                text = choice.get("text") or ""
                if vertical:   # completions get no appended text, but harmful text is stopped all the same
                    prompt = echoed(index)
                    generated = text[len(prompt):] if prompt and text.startswith(prompt) else text
                    safe, replaced = guard.screen_answer(call, generated, index)
                    if replaced:
                        text = safe
                        choice["text"], choice["finish_reason"], choice["logprobs"] = safe, "content_filter", None
                answers.append(text)
        call.count_usage(result.get("usage"))
        call.answer = "\n".join(answers)
        result["domainlm"] = self._info(call).model_dump(mode="json")
        headers = call.headers()
        await self.service.finish_answered(call)
        return Response(json.dumps(result, ensure_ascii=False), media_type="application/json", headers=headers)

    async def _relay(self, call: Call, stream: AsyncIterator[bytes], first: bytes | None, include_usage: bool,
                     filtered: StreamFilter | None) -> AsyncIterator[bytes]:
        """Forward the engine's SSE payloads (a vertical's through its StreamFilter); count usage."""
        metrics = self.service.metrics
        usage_payload = None
        ttft_done = False
        checked = time.monotonic()
        try:
            payload = first
            while payload is not None:
                if time.monotonic() - checked >= REVOCATION_CHECK_S:
                    checked = time.monotonic()
                    if call.key is not None and await asyncio.to_thread(self.service.keys.is_revoked, call.key.id):
                        call.status, call.error = 403, "API key revoked during the stream"
                        yield frame(json.dumps(APIError(403, "this API key was revoked", code="invalid_api_key")
                                               .body()).encode())
                        yield DONE_FRAME
                        return
                    suspended = await asyncio.to_thread(self.service.suspensions.get, call.vertical)
                    if suspended is not None:   # the emergency switch ends streams in flight too
                        call.status, call.error = 503, "vertical suspended during the stream"
                        yield frame(json.dumps(APIError(503, f"vertical '{call.vertical}' was suspended: "
                                                             f"{suspended.reason}", code="vertical_suspended")
                                               .body()).encode())
                        yield DONE_FRAME
                        return
                if not ttft_done:
                    metrics.ttft.labels(vertical=call.vertical).observe(time.perf_counter() - call.started)
                    ttft_done = True
                if b'"usage"' in payload and b'"choices":[]' in payload.replace(b" ", b""):
                    usage_payload = payload
                elif filtered is not None:
                    for out in filtered.chunks(payload):
                        yield frame(out)
                else:
                    yield frame(payload)
                payload = await anext(stream, None)
            if usage_payload is not None:
                call.count_usage(json.loads(usage_payload).get("usage"))
                if include_usage:
                    yield frame(usage_payload)
            try:   # the end marker goes out once the answer is on the audit record (audit.durable)
                await self.service.finish_answered(call)
            except APIError as exc:
                call.status, call.error = exc.status, exc.message
                yield frame(json.dumps(exc.body()).encode())
            yield DONE_FRAME
        except (EngineUnavailable, UpstreamError) as exc:
            err = unavailable(str(exc), getattr(exc, "retry_after", 5)) if isinstance(exc, EngineUnavailable) \
                else upstream_api_error(exc)
            call.status, call.error = err.status, err.message
            yield frame(json.dumps(err.body()).encode())
            yield DONE_FRAME
        except asyncio.CancelledError:
            call.status, call.error = 499, "client closed the stream"
            raise
        finally:
            if filtered is not None:
                filtered.close()
            await stream.aclose()
            self.service.finish(call)

    # --- answers the gateway writes itself ------------------------------------------------------------------------
    @staticmethod
    def _info(call: Call) -> DomainlmInfo:
        return DomainlmInfo(adapter=call.route.public, vertical=call.route.vertical, version=call.route.version,
                            policy=call.policy.summary() if call.policy else None)

    async def refusal(self, call: Call, req, text: str, kind: str) -> Response:
        """Answer with the policy's refusal text without calling the model (the shapes of a model answer), or with
        an OpenAI-shaped 400 where the vertical's guardrails say refuse_as: error."""
        self.service.metrics.policy.labels(vertical=call.vertical, action="refusal").inc()
        if call.policy.refuse_as_error:
            raise APIError(400, text, param="messages" if kind == "chat" else "prompt",
                           code="content_policy_violation")
        rid = f"{'chatcmpl' if kind == 'chat' else 'cmpl'}-{uuid.uuid4().hex[:24]}"
        created, model, info = int(time.time()), call.route.public, self._info(call)
        call.answer, call.prompt_tokens, call.completion_tokens = text, 0, 0
        usage = Usage(prompt_tokens=0, completion_tokens=0, total_tokens=0)
        headers = call.headers()
        await self.service.finish_answered(call)
        if kind == "chat":
            whole = ChatCompletion(id=rid, created=created, model=model, usage=usage, domainlm=info,
                                   choices=[ChatChoice(message=AssistantMessage(content=text))])
            chunks = [ChatCompletionChunk(id=rid, created=created, model=model, domainlm=info,
                                          choices=[ChatChunkChoice(delta=delta, finish_reason=finish)])
                      for delta, finish in ((ChatDelta(role="assistant", content=""), None),
                                            (ChatDelta(content=text), "stop"))]
            usage_chunk = ChatCompletionChunk(id=rid, created=created, model=model, choices=[], usage=usage)
        else:
            whole = Completion(id=rid, created=created, model=model, usage=usage, domainlm=info,
                               choices=[CompletionChoice(text=text)])
            chunks = [whole.model_copy(update={"usage": None})]
            usage_chunk = Completion(id=rid, created=created, model=model, choices=[], usage=usage)
        if not req.stream:
            return Response(_json(whole), media_type="application/json", headers=headers)
        if req.stream_options and req.stream_options.include_usage:
            chunks.append(usage_chunk)
        raw = b"".join(frame(_json(chunk)) for chunk in chunks) + DONE_FRAME
        return Response(raw, media_type="text/event-stream", headers=headers)
