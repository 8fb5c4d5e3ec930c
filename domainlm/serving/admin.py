"""/admin routes (scope `admin`): hot load / unload / promote / rollback across all replicas, keys, audit, status,
and the emergency switch (suspend / resume a vertical)."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Request

from domainlm.errors import DomainlmError
from domainlm.registry import NotFound, RegistryError, parse_ref
from domainlm.serving import lifecycle
from domainlm.serving.auth import ApiKey, KeyStoreError
from domainlm.serving.errors import APIError
from domainlm.serving.protocol import (ErrorResponse, KeyCreateRequest, LoadRequest, PromoteRequest, RollbackRequest,
                                       SuspendRequest)
from domainlm.serving.suspension import SuspensionError, switch
from domainlm.serving.routes import KeyDep, service_of

ERRORS = {status: {"model": ErrorResponse} for status in (400, 401, 403, 404, 409, 502, 503)}


def admin_key(request: Request, key: KeyDep) -> ApiKey:
    service_of(request).admission.require_admin(key)
    return key


AdminDep = Annotated[ApiKey, Depends(admin_key)]


def actor(key: ApiKey) -> str:
    return f"key:{key.id}"


def registry_error(exc: DomainlmError) -> APIError:
    if isinstance(exc, NotFound):
        return APIError(404, str(exc), code="not_found")
    if isinstance(exc, RegistryError):
        return APIError(409 if "invalid" not in str(exc) else 400, str(exc), code="registry_refused")
    return APIError(409, str(exc), code="integrity_error")


router = APIRouter(prefix="/admin", tags=["admin"], responses=ERRORS)


@router.get("/status")
async def status(request: Request, key: AdminDep):
    service = service_of(request)
    ok, detail = service.ready()
    return {"ready": ok, **detail, "engines": {n: e.status() for n, e in service.engines.items()},
            "models": service.table.cards(), "production": dict(service.table.aliases),
            "inflight": {k: v for k, v in service.inflight.items() if v},
            "suspended": {v: s.to_dict() for v, s in service.suspensions.active().items()}}


@router.post("/load")
async def load(body: LoadRequest, request: Request, key: AdminDep):
    service = service_of(request)
    try:
        vertical, version = parse_ref(body.model)
    except RegistryError as exc:
        raise APIError(400, str(exc), param="model") from None
    if version is None:
        raise APIError(400, "load needs a pinned version such as medical@3", param="model")
    async with service.lock(vertical):
        entry = await lifecycle.load_version(service, vertical, version, actor(key))
    await service.announce("adapter_loaded", ref=entry.ref)
    return {"loaded": entry.ref, "entry": entry.to_dict()}


@router.post("/unload")
async def unload(body: LoadRequest, request: Request, key: AdminDep):
    service = service_of(request)
    try:
        vertical, _ = parse_ref(body.model)
    except RegistryError as exc:
        raise APIError(400, str(exc), param="model") from None
    async with service.lock(vertical):
        await lifecycle.unload_version(service, body.model, actor(key))
    await service.announce("adapter_unloaded", ref=body.model)
    return {"unloaded": body.model}


@router.post("/promote")
async def promote(body: PromoteRequest, request: Request, key: AdminDep):
    """Gates are checked before anything is loaded; the new version is loaded and checked on every replica, then
    the registry moves it to production and the vertical's alias switches to it."""
    service = service_of(request)
    registry = service.registry
    async with service.lock(body.vertical):
        try:
            entry = await asyncio.to_thread(registry.get, body.vertical, body.version)
            if not body.force:
                decision = await asyncio.to_thread(registry.check_promotion, body.vertical, body.version)
                if not decision.passed:
                    raise APIError(409, f"cannot promote {entry.ref}: " + "; ".join(decision.failures),
                                   code="gates_not_met")
        except DomainlmError as exc:
            raise registry_error(exc) from None
        was_loaded = entry.ref in service.table.pinned
        await lifecycle.load_version(service, body.vertical, body.version, actor(key))
        try:
            entry = await asyncio.to_thread(registry.promote, body.vertical, body.version, body.force, actor(key))
        except DomainlmError as exc:
            if not was_loaded:
                await lifecycle.unload_version(service, entry.ref, actor(key))
            raise registry_error(exc) from None
        previous = service.table.aliases.get(body.vertical)
        await lifecycle.switch_production(service, body.vertical, entry, previous)
    await service.announce("registry_changed", vertical=body.vertical)
    return {"production": entry.ref, "previous": previous, "forced": body.force}


@router.post("/rollback")
async def rollback(body: RollbackRequest, request: Request, key: AdminDep):
    service = service_of(request)
    async with service.lock(body.vertical):
        lifecycle.engine_for_vertical(service, body.vertical)
        try:
            target = await asyncio.to_thread(service.registry.rollback_target, body.vertical)
        except DomainlmError as exc:
            raise registry_error(exc) from None
        await lifecycle.load_version(service, body.vertical, target.version, actor(key))  # loadable before moving
        try:
            entry = await asyncio.to_thread(service.registry.rollback, body.vertical, actor(key))
        except DomainlmError as exc:
            raise registry_error(exc) from None
        previous = service.table.aliases.get(body.vertical)
        await lifecycle.switch_production(service, body.vertical, entry, previous)
    await service.announce("registry_changed", vertical=body.vertical)
    return {"production": entry.ref, "previous": previous}


@router.post("/sync")
async def sync(request: Request, key: AdminDep):
    """Follow the registry: serve each vertical's current production version (after a CLI promote/rollback)."""
    service = service_of(request)
    changed = {}
    for group in service.config.bases:
        for vertical in group.verticals:
            async with service.lock(vertical):
                moved = await lifecycle.follow_registry(service, vertical, actor(key))
            if moved:
                changed[vertical] = moved
                await service.announce("registry_changed", vertical=vertical)
    return {"changed": changed, "production": dict(service.table.aliases)}


@router.get("/registry")
async def registry_list(request: Request, key: AdminDep):
    entries = await asyncio.to_thread(service_of(request).registry.list)
    return {"entries": [e.to_dict() for e in entries]}


@router.get("/keys")
async def keys_list(request: Request, key: AdminDep):
    return {"keys": [k.to_dict() for k in service_of(request).keys.list()]}


@router.post("/keys")
async def keys_create(body: KeyCreateRequest, request: Request, key: AdminDep):
    try:
        plaintext, record = service_of(request).keys.create(body.name, body.scopes, body.rpm, body.tpm)
    except KeyStoreError as exc:
        raise APIError(400, str(exc), param="scopes") from None
    return {"key": plaintext, **record.to_dict()}


@router.delete("/keys/{key_id}")
async def keys_revoke(key_id: str, request: Request, key: AdminDep):
    try:
        record = service_of(request).keys.revoke(key_id)
    except KeyStoreError as exc:
        raise APIError(404, str(exc), param="key_id") from None
    return record.to_dict()


@router.get("/verticals")
async def verticals(request: Request, key: AdminDep):
    """Suspended verticals and the latest suspend / resume switches (every replica's)."""
    store = service_of(request).suspensions
    return {"suspended": {v: s.to_dict() for v, s in store.active().items()},
            "events": await asyncio.to_thread(store.events, 50)}


@router.post("/verticals/{vertical}/suspend")
async def suspend(vertical: str, body: SuspendRequest, request: Request, key: AdminDep):
    service = service_of(request)
    try:
        record = await asyncio.to_thread(switch, service.suspensions, "suspend", vertical, actor(key),
                                         service.audit.record_now, body.reason)
    except SuspensionError as exc:
        raise APIError(400, str(exc), param="vertical") from None
    return {"suspended": record.to_dict()}


@router.post("/verticals/{vertical}/resume")
async def resume(vertical: str, request: Request, key: AdminDep):
    service = service_of(request)
    try:
        record = await asyncio.to_thread(switch, service.suspensions, "resume", vertical, actor(key),
                                         service.audit.record_now)
    except SuspensionError as exc:
        raise APIError(404, str(exc), param="vertical") from None
    return {"resumed": record.to_dict()}


@router.get("/audit")
async def audit(request: Request, key: AdminDep, limit: int = 100, vertical: str | None = None):
    where = {"vertical": vertical} if vertical else {}
    rows = await asyncio.to_thread(service_of(request).audit.rows, max(1, min(limit, 1000)), **where)
    return {"requests": rows}
