"""Start-up and hot changes of what the gateway serves: engines per base, production adapters, pinned versions.

Every adapter goes through `registry.verified()` (hashes re-checked) and must have been trained on the base the
engine runs (weights sha256 in its manifest); a tampered or mismatched adapter is refused and reported in /ready.
"""

from __future__ import annotations

import asyncio

from domainlm import log
from domainlm.errors import DomainlmError
from domainlm.registry import Entry, parse_ref
from domainlm.serving.context import PromptCounter
from domainlm.serving.engines.base import Adapter
from domainlm.serving.errors import APIError

logger = log.get("serving")


def adapter_of(entry: Entry) -> Adapter:
    return Adapter(name=entry.ref, path=entry.path, vertical=entry.vertical, version=entry.version,
                   artifact_id=entry.artifact_id)


def _resolve_base(group):
    """(local path or None, weights sha256 or None). Remote-only groups may not have the base locally."""
    from domainlm.models import resolve_base

    try:
        base = resolve_base(group.model)
        return str(base.path), base.weights_sha256
    except DomainlmError as exc:
        if group.vllm.remote and not group.vllm.replicas and group.engine != "hf":
            logger.warning("base not local; remote replicas only", base=group.model, why=str(exc))
            return None, None
        raise


def checked_entry(service, vertical: str, version: int | None, base_name: str) -> Entry:
    """The registry entry, hash-verified and trained on this engine's base; DomainlmError otherwise."""
    entry = service.registry.verified(vertical, version)
    expected = service.base_sha.get(base_name)
    if expected and entry.base_sha256 and entry.base_sha256 != expected:
        raise DomainlmError(f"{entry.ref} was trained on a different base model (weights sha256 "
                            f"{entry.base_sha256[:12]} ≠ {expected[:12]} of '{base_name}')")
    return entry


async def start_engines(service) -> None:
    from domainlm.serving.engines.factory import build_engine
    from domainlm.verticals import get_vertical

    config = service.config
    for group in config.bases:
        name = group.public_base_name()
        path, sha = _resolve_base(group)
        service.base_sha[name] = sha
        service.groups[name] = group
        service.counters[name] = PromptCounter(path)
        entries: list[Entry] = []
        refs = [(v, None) for v in group.verticals] + [parse_ref(r) for r in group.pinned]
        for vertical, version in refs:
            try:
                get_vertical(vertical)  # its policy is applied to every request: it must be defined
                entry = checked_entry(service, vertical, version, name)
            except DomainlmError as exc:
                service.problems.append(f"{vertical}{'@' + str(version) if version else ''}: {exc}")
                logger.error("adapter not served", vertical=vertical, version=version, why=str(exc))
                continue
            if entry.ref not in {e.ref for e in entries}:
                entries.append(entry)
        engine = build_engine(group, path, config)
        await engine.start([adapter_of(e) for e in entries])
        service.engines[name] = engine
        service.table.add_base(name, engine)
        for entry in entries:
            service.table.add_version(entry, engine)
            if entry.stage == "production" and entry.vertical in group.verticals:
                service.table.set_production(entry.vertical, entry.ref)
        logger.info("engine started", base=name, adapters=[e.ref for e in entries])


def engine_for_vertical(service, vertical: str):
    for name, group in service.groups.items():
        if vertical in group.verticals:
            return name, service.engines[name]
    raise APIError(404, f"vertical '{vertical}' is not served by this gateway (add it to a base's verticals in "
                        "the serve config)", param="vertical", code="vertical_not_served")


async def load_version(service, vertical: str, version: int | None, actor: str) -> Entry:
    """Load a registry version on every replica of its engine (verified; the load is checked) and list it."""
    from domainlm.serving.engines.vllm_server import AdapterLoadError

    base_name, engine = engine_for_vertical(service, vertical)
    try:
        entry = checked_entry(service, vertical, version, base_name)
    except DomainlmError as exc:
        status = 404 if "not in the registry" in str(exc) or "no production" in str(exc) else 409
        raise APIError(status, str(exc), code="adapter_refused") from None
    if entry.ref not in engine.loaded():
        # one replica at a time loads an adapter into the vLLM servers they share (a Redis lock when there is one)
        async with service.adapter_lock(entry.ref):
            try:
                await engine.load_adapter(adapter_of(entry))
            except AdapterLoadError as exc:
                raise APIError(502, f"loading {entry.ref} failed: {exc}", code="adapter_load_failed") from None
    service.table.add_version(entry, engine)
    service.audit.record(request_id=f"admin-{actor}", key_id=actor, endpoint="admin/load", model=entry.ref,
                         vertical=vertical, version=entry.version, status=200)
    return entry


async def unload_version(service, ref: str, actor: str) -> None:
    vertical, version = parse_ref(ref)
    if version is None:
        raise APIError(400, "unload needs a pinned version such as medical@3", param="model")
    _, engine = engine_for_vertical(service, vertical)
    service.table.remove_version(ref)  # 409 if it is production
    await engine.unload_adapter(ref)
    service.audit.record(request_id=f"admin-{actor}", key_id=actor, endpoint="admin/unload", model=ref,
                         vertical=vertical, version=version, status=200)


async def switch_production(service, vertical: str, entry: Entry, previous: str | None) -> None:
    """Point `vertical` at `entry` (already loaded), then unload the previous version unless it stays pinned."""
    service.table.set_production(vertical, entry.ref)
    pinned = set()
    for group in service.config.bases:
        pinned |= set(group.pinned)
    if previous and previous != entry.ref and previous not in pinned:
        _, engine = engine_for_vertical(service, vertical)
        service.table.pinned.pop(previous, None)  # no new requests reach it from here on
        for _ in range(600):  # let requests already on it finish (≤ 60 s) before the engine drops it
            if not service.inflight.get(previous):
                break
            await asyncio.sleep(0.1)
        await engine.unload_adapter(previous)


async def follow_registry(service, vertical: str, actor: str) -> dict | None:
    """Serve `vertical`'s current production version from the registry (after a promote or rollback made by the
    CLI or by another gateway replica); {"from", "to"} if it changed, else None. Call under service.lock(vertical)."""
    production = await asyncio.to_thread(service.registry.production, vertical)
    current = service.table.aliases.get(vertical)
    if production is None or production.ref == current:
        return None
    entry = await load_version(service, vertical, production.version, actor)
    await switch_production(service, vertical, entry, current)
    return {"from": current, "to": entry.ref}
