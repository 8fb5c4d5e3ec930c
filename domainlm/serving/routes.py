"""Thin OpenAI-compatible route handlers: parse, authenticate, hand over to the endpoint classes."""

from __future__ import annotations

import json
import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from domainlm.serving.auth import ApiKey
from domainlm.serving.errors import APIError
from domainlm.serving.protocol import ChatCompletionRequest, CompletionRequest, ErrorResponse, ModelList
from domainlm.serving.call import Call

ERRORS = {status: {"model": ErrorResponse} for status in (400, 401, 403, 404, 413, 429, 503)}


def service_of(request: Request):
    return request.app.state.service


def api_key(request: Request) -> ApiKey:
    """Dependency: runs before the body is validated, so a missing key is a 401 whatever the body."""
    service = service_of(request)
    client = request.client.host if request.client else "unknown"
    if service.admission.auth_throttled(client) and not service.keys.peek(request.headers.get("authorization") or ""):
        request.state.audit_auth_failure = False   # the first refusal of this address this minute was audited
        raise APIError(429, "too many failed authentications from this address: retry in a minute",
                       code="rate_limit_exceeded", retry_after=60)
    try:
        key = service.admission.authenticate(request.headers.get("authorization"))
    except APIError as exc:
        if exc.status == 401:
            request.state.audit_auth_failure = service.admission.auth_failed(client)
        raise
    request.state.key = key
    if not request.url.path.startswith("/v1/"):
        # console and admin calls count against the key's requests per minute too (the OpenAI routes are admitted
        # later, with their token estimate)
        service.admission.admit_request(key)
    return key


def request_id(request: Request) -> str:
    given = request.headers.get("x-request-id", "")
    return given if 0 < len(given) <= 64 and given.isprintable() else uuid.uuid4().hex


async def run(request: Request, call: Call, work) -> Response:
    """Await the serving coroutine; an APIError becomes an OpenAI-shaped error (audited like any request)."""
    service = service_of(request)
    try:
        return await work
    except APIError as exc:
        call.status, call.error = exc.status, exc.message
        response = exc.response()
        for name, value in call.headers().items():
            response.headers[name] = value
        service.finish(call)
        return response


KeyDep = Annotated[ApiKey, Depends(api_key)]
router = APIRouter()


@router.post("/v1/chat/completions", responses=ERRORS, tags=["openai"])
async def chat_completions(body: ChatCompletionRequest, request: Request, key: KeyDep):
    call = Call("chat", request_id(request), key=key)
    return await run(request, call, service_of(request).chat(body, call))


@router.post("/v1/completions", responses=ERRORS, tags=["openai"])
async def completions(body: CompletionRequest, request: Request, key: KeyDep):
    call = Call("completions", request_id(request), key=key)
    return await run(request, call, service_of(request).completions(body, call))


@router.get("/v1/models", response_model=ModelList, responses=ERRORS, tags=["openai"])
async def models(request: Request, key: KeyDep):
    cards = [c for c in service_of(request).table.cards() if key.can_use(c.get("vertical"))]
    return {"object": "list", "data": cards}


@router.get("/health", tags=["ops"])
async def health():
    """Liveness: the gateway process answers."""
    return {"status": "ok"}


def _is_admin(request: Request) -> bool:
    """Whether the request carries an admin key (no audit row, no error: ops routes answer either way)."""
    try:
        return service_of(request).admission.authenticate(request.headers.get("authorization")).admin
    except APIError:
        return False


@router.get("/ready", tags=["ops"], responses={503: {"model": ErrorResponse}})
async def ready(request: Request):
    """Readiness: every engine has a healthy replica. The status code is for load balancers; which engine is down
    and why (paths included) only for an admin key."""
    service = service_of(request)
    ok, detail = service.ready()
    if not _is_admin(request):
        detail = {}
    if not ok:
        error = APIError(503, "engines are not ready", code="not_ready",
                         retry_after=service.config.gateway.retry_after_s)
        return Response(json.dumps({**error.body(), **detail}), status_code=503, headers=error.headers(),
                        media_type="application/json")
    return {"status": "ready", **detail}


@router.get("/metrics", tags=["ops"])
async def metrics(request: Request):
    """Prometheus text; needs an admin key (scrape with `authorization: {credentials: <key>}`) unless
    gateway.open_metrics is true."""
    service = service_of(request)
    if not service.config.gateway.open_metrics and not _is_admin(request):
        return APIError(403, "metrics need an API key with the 'admin' scope (or gateway.open_metrics: true)",
                        code="insufficient_scope").response()
    service.ready()  # refresh the replica gauges
    return Response(service.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")
