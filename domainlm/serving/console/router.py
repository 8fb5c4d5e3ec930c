"""Routes of the web console: the page (/console), its files (/console/static/*) and its JSON API (/console/api/*).

The page itself holds no data and needs no key; every /console/api route authenticates exactly like /v1 (the
same `Authorization: Bearer` API keys, via routes.api_key). Promote, rollback and the audit log need the `admin`
scope; other keys get a 403 in the OpenAI error shape whose message the page shows as it is.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from domainlm.errors import DomainlmError
from domainlm.registry import RegistryError
from domainlm.registry.names import check_vertical, check_version
from domainlm.serving import admin
from domainlm.serving.auth import ApiKey
from domainlm.serving.console import static_files, views
from domainlm.serving.console.reports import report_view
from domainlm.serving.console.state import ConsoleState
from domainlm.serving.errors import APIError
from domainlm.serving.protocol import PromoteRequest, RollbackRequest
from domainlm.serving.routes import api_key

router = APIRouter(include_in_schema=False)
api = APIRouter(prefix="/console/api", tags=["console"])


# --- page and files -----------------------------------------------------------------------------------------------
@router.get("/console")
@router.get("/console/")
async def page():
    return static_files.response("index.html")


@router.get("/console/static/{name}")
async def static(name: str):
    response = static_files.response(name)
    if response is None:
        raise APIError(404, f"no console file '{name}'", code="not_found")
    return response


# --- helpers ------------------------------------------------------------------------------------------------------
def state_of(request: Request) -> ConsoleState:
    return request.app.state.console


def need_admin(key: ApiKey, action: str) -> None:
    if not key.admin:
        raise APIError(403, f"{action} needs an API key with the 'admin' scope; this key ('{key.name}') has scopes "
                            f"{', '.join(key.scopes)}. Sign in with an admin key.", code="insufficient_scope")


def vertical_param(vertical: str) -> str:
    try:
        return check_vertical(vertical)
    except RegistryError as exc:
        raise APIError(400, str(exc), param="vertical") from None


def version_param(version: str) -> int:
    try:
        return check_version(version)
    except RegistryError as exc:
        raise APIError(400, str(exc), param="version") from None


def known_vertical(state: ConsoleState, vertical: str) -> str:
    vertical = vertical_param(vertical)
    if vertical not in views.vertical_names(state.registry):
        raise APIError(404, f"unknown vertical '{vertical}'", param="vertical", code="not_found")
    return vertical


def scoped_vertical(state: ConsoleState, vertical: str, key: ApiKey) -> str:
    """A known vertical this key may see: a key scoped to `medical` reads nothing of petrochem (403)."""
    vertical = known_vertical(state, vertical)
    if not key.can_use(vertical):
        raise APIError(403, f"this key may not use vertical '{vertical}'; its scopes are {list(key.scopes)}",
                       param="vertical", code="insufficient_scope")
    return vertical


async def in_thread(fn, *args):
    """Registry and audit reads touch SQLite and files: off the event loop, errors in the OpenAI shape."""
    try:
        return await asyncio.to_thread(fn, *args)
    except DomainlmError as exc:
        raise admin.registry_error(exc) from None


# --- JSON API -----------------------------------------------------------------------------------------------------
@api.get("/session")
async def session(key: ApiKey = Depends(api_key)):
    return {"id": key.id, "name": key.name, "scopes": list(key.scopes), "admin": key.admin}


@api.get("/verticals")
async def verticals(request: Request, key: ApiKey = Depends(api_key)):
    state = state_of(request)
    rows = await in_thread(views.verticals_view, state.registry, state.serving())
    suspended = state.service.suspensions.active()
    for row in rows:   # the emergency switch's state, shown on the vertical's card
        row["suspended"] = suspended[row["name"]].to_dict() if row["name"] in suspended else None
    return {"verticals": [row for row in rows if key.can_use(row["name"])]}


@api.get("/registry/{vertical}")
async def registry(vertical: str, request: Request, key: ApiKey = Depends(api_key)):
    state = state_of(request)
    vertical = scoped_vertical(state, vertical, key)
    return await in_thread(views.registry_view, state.registry, vertical)


class PromoteBody(BaseModel):
    version: int = Field(ge=1)
    force: bool = False


@api.post("/registry/{vertical}/promote")
async def promote(vertical: str, body: PromoteBody, request: Request, key: ApiKey = Depends(api_key)):
    need_admin(key, "Promoting")
    state = state_of(request)
    vertical = scoped_vertical(state, vertical, key)
    if state.served(vertical):  # the gateway's own admin path: load on every replica, then switch the alias
        await admin.promote(PromoteRequest(vertical=vertical, version=body.version, force=body.force), request, key)
    else:  # not served here: a registry-only change, with the same gate check
        await in_thread(lambda: state.registry.promote(vertical, body.version, body.force, admin.actor(key)))
    return await in_thread(views.registry_view, state.registry, vertical)


@api.post("/registry/{vertical}/rollback")
async def rollback(vertical: str, request: Request, key: ApiKey = Depends(api_key)):
    need_admin(key, "Rolling back")
    state = state_of(request)
    vertical = scoped_vertical(state, vertical, key)
    if state.served(vertical):
        await admin.rollback(RollbackRequest(vertical=vertical), request, key)
    else:
        await in_thread(lambda: state.registry.rollback(vertical, admin.actor(key)))
    return await in_thread(views.registry_view, state.registry, vertical)


@api.get("/reports/{vertical}/{version}")
async def report(vertical: str, version: str, request: Request, key: ApiKey = Depends(api_key)):
    state = state_of(request)
    vertical, version = scoped_vertical(state, vertical, key), version_param(version)
    return await in_thread(report_view, state.registry, vertical, version)


@api.get("/live")
async def live(request: Request, key: ApiKey = Depends(api_key)):
    live = state_of(request).sampler.read()
    # the base models' traffic shows as vertical "base": the key needs scope 'base' to see it
    live["verticals"] = [row for row in live["verticals"]
                         if key.can_use(None if row["vertical"] == "base" else row["vertical"])]
    return live


@api.get("/audit")
async def audit(request: Request, key: ApiKey = Depends(api_key), limit: int = Query(100, ge=1, le=1000),
                vertical: str | None = None):
    need_admin(key, "Reading the audit log")
    state = state_of(request)
    if vertical:
        vertical = vertical_param(vertical)
    return {"rows": await in_thread(state.audit_rows, limit, vertical)}


router.include_router(api)
