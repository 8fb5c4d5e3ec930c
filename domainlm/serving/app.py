"""The gateway FastAPI app: OpenAI routes + ops routes + /admin, OpenAI-shaped errors, a request-size guard.

    app = create_app(ServeConfig(...))            # engines start in the app's lifespan
    app = create_app(config, extra_routers=[r])   # more routes (e.g. the web console) on the same service

The web console (domainlm.serving.console, when installed) is mounted by `mount(app, service)` if
`gateway.console` is true.
"""

from __future__ import annotations

import importlib
import time
import uuid
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from domainlm import __version__, log
from domainlm.serving.errors import APIError
from domainlm.serving.call import Call
from domainlm.serving.serving import GatewayService

logger = log.get("serving")


class BodyLimit:
    """Pure ASGI middleware: bodies over `limit` bytes get 413 before anything parses them."""

    def __init__(self, app, limit: int):
        self.app = app
        self.limit = limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length")
        too_big = APIError(413, f"request body is larger than this gateway's limit of {self.limit} bytes",
                           code="request_too_large")
        if length is not None and length.isdigit() and int(length) > self.limit:
            return await too_big.response()(scope, receive, send)
        seen = 0

        async def limited_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _TooLarge()
            return message

        try:
            await self.app(scope, limited_receive, send)
        except _TooLarge:
            await too_big.response()(scope, receive, send)


LOOPBACK = ("127.0.0.1", "::1", "localhost", "0:0:0:0:0:0:0:1")


def allowed_hosts(gateway) -> frozenset[str] | None:
    """Host header values the gateway answers (None = any). A gateway bound to loopback answers only loopback names
    unless told otherwise: a web page that re-points its own domain at 127.0.0.1 (DNS rebinding) sends its own
    name as Host and is refused."""
    if gateway.allowed_hosts is not None:
        return None if "*" in gateway.allowed_hosts else frozenset(h.lower() for h in gateway.allowed_hosts)
    return frozenset(LOOPBACK) if gateway.host in LOOPBACK else None


def host_name(value: str) -> str:
    """'example.com:8080' → 'example.com', '[::1]:8080' → '::1'."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


class HostCheck:
    """Pure ASGI middleware: a request whose Host is not an allowed name gets 400 before any route runs."""

    def __init__(self, app, allowed: frozenset[str] | None):
        self.app = app
        self.allowed = allowed

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or self.allowed is None:
            return await self.app(scope, receive, send)
        host = dict(scope.get("headers") or []).get(b"host", b"").decode("latin-1")
        if host_name(host) not in self.allowed:
            refused = APIError(400, f"Host '{host[:100]}' is not one this gateway answers (gateway.allowed_hosts)",
                               code="invalid_host")
            return await refused.response()(scope, receive, send)
        return await self.app(scope, receive, send)


AUDITED_PREFIXES = ("/admin", "/console/api", "/metrics", "/ready")


class AuditOps:
    """Pure ASGI middleware: every admin and console-API action (anything but a read) and every refusal (4xx) on
    those routes and the ops routes gets an audit row — who (key id, when known), what (method and path), status.
    The OpenAI routes audit themselves (serving.py), with tokens and policy."""

    def __init__(self, app, service):
        self.app = app
        self.service = service

    async def __call__(self, scope, receive, send):
        path = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith(AUDITED_PREFIXES):
            return await self.app(scope, receive, send)
        started, status = time.perf_counter(), [500]

        async def watched(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, watched)
        finally:
            method = scope.get("method", "")
            if (method not in ("GET", "HEAD") or status[0] >= 400) \
                    and (scope.get("state") or {}).get("audit_auth_failure", True):
                key = (scope.get("state") or {}).get("key")
                headers = dict(scope.get("headers") or [])
                self.service.audit.record(
                    request_id=headers.get(b"x-request-id", b"").decode("latin-1")[:64] or uuid.uuid4().hex,
                    key_id=getattr(key, "id", None), endpoint=f"{method} {path[:200]}", model=None, vertical=None,
                    version=None, status=status[0], error=None, stream=False,
                    latency_ms=round((time.perf_counter() - started) * 1000, 3), prompt_tokens=None,
                    completion_tokens=None, policy=None)


class _TooLarge(Exception):
    pass


def _param(loc: tuple) -> str | None:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or None


def install_error_handlers(app: FastAPI) -> None:
    def audited(request: Request, error: APIError) -> Response:
        """Errors raised before a handler ran (auth, validation) are still audited and counted."""
        service = request.app.state.service
        if request.url.path.startswith("/v1/"):
            endpoint = request.url.path.removeprefix("/v1/").replace("/", ".")
            from domainlm.serving.routes import request_id

            call = Call(endpoint, request_id(request), key=getattr(request.state, "key", None),
                        status=error.status, error=error.message,
                        audited=getattr(request.state, "audit_auth_failure", True))
            service.finish(call)
        return error.response()

    @app.exception_handler(APIError)
    async def api_error(request: Request, exc: APIError):
        return audited(request, exc)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        errors = exc.errors()
        first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
        where = _param(tuple(first.get("loc", ())))
        message = f"{where}: {first.get('msg')}" if where else str(first.get("msg"))
        if first.get("type") == "json_invalid" or (where is None and "JSON" in message):
            message = f"request body is not valid JSON ({first.get('msg')})"
        return audited(request, APIError(400, message, param=where, code="invalid_request"))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        message = {404: f"no route {request.url.path}", 405: f"method {request.method} is not allowed here"}
        return APIError(exc.status_code, message.get(exc.status_code, str(exc.detail))).response()

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):
        logger.error("unhandled error", path=request.url.path, error=repr(exc))
        return APIError(500, "internal error in the gateway (see its log)", code="internal_error").response()


def mount_console(app: FastAPI, service: GatewayService) -> bool:
    try:
        console = importlib.import_module("domainlm.serving.console")
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("domainlm.serving.console"):
            return False
        raise
    mount = getattr(console, "mount", None)
    if mount is None:  # present but incomplete (e.g. a checkout mid-change): serve the API without it
        logger.warning("console package has no mount(app, service); /console not mounted")
        return False
    mount(app, service)
    return True


def create_app(config, *, service: GatewayService | None = None, extra_routers=()) -> FastAPI:
    from domainlm.serving import admin, routes, safety_routes

    service = service or GatewayService(config)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await service.start()
        logger.info("gateway started", models=service.table.names(), problems=service.problems)
        try:
            yield
        finally:
            await service.stop()
            logger.info("gateway stopped")

    docs = config.gateway.api_docs
    app = FastAPI(title="domainlm gateway", version=__version__, lifespan=lifespan,
                  docs_url="/docs" if docs else None, redoc_url=None, openapi_url="/openapi.json" if docs else None,
                  description="OpenAI-compatible gateway for vertical LoRA adapters (domainlm).")
    app.state.service = service
    app.add_middleware(BodyLimit, limit=config.gateway.max_body_bytes)
    app.add_middleware(AuditOps, service=service)
    app.add_middleware(HostCheck, allowed=allowed_hosts(config.gateway))
    install_error_handlers(app)
    app.include_router(routes.router)
    app.include_router(admin.router)
    app.include_router(safety_routes.router)
    for router in extra_routers:
        app.include_router(router)
    if config.gateway.console:
        mount_console(app, service)
    return app

