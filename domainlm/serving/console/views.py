"""What the console's Verticals and Registry views show, built from the registry and the vertical definitions.

Plain functions from (registry, vertical definitions, what the gateway serves) to JSON-ready dicts; the router only
adds auth. Manifests are read, not re-hashed: the registry verifies artifacts whenever one is served or promoted.
"""

from __future__ import annotations

from domainlm.artifacts import read_manifest
from domainlm.errors import DomainlmError
from domainlm.registry import Entry, Registry

EVENTS_SHOWN = 50  # registry audit events listed under a vertical's history


def gate_list(gates) -> list[dict]:
    """The vertical's gates as [{name, value}], leaving out the ones that are switched off (None / False)."""
    if gates is None:
        return []
    values = gates.model_dump() if hasattr(gates, "model_dump") else dict(vars(gates))
    return [{"name": k, "value": v} for k, v in values.items() if v is not None and v is not False]


def _definition(name: str):
    from domainlm.verticals import get_vertical

    try:
        return get_vertical(name)
    except DomainlmError:  # a registry folder for a vertical whose definition is not installed here
        return None


def vertical_names(registry: Registry) -> list[str]:
    from domainlm.verticals import list_verticals

    return sorted(set(list_verticals()) | set(registry.verticals()))


def verticals_view(registry: Registry, serving: dict[str, dict]) -> list[dict]:
    """One row per vertical: title, production version, candidates, gates, and where the gateway runs it.

    `serving` maps a vertical to {"engine": ..., "backend": ...} for the verticals this gateway serves.
    """
    rows = []
    for name in vertical_names(registry):
        definition = _definition(name)
        entries = registry.list(name)
        production = next((e.version for e in entries if e.stage == "production"), None)
        where = serving.get(name, {})
        rows.append({
            "name": name,
            "title": definition.title if definition else {"en": name, "zh": name},
            "production": production,
            "candidates": [e.version for e in entries if e.stage == "candidate"],
            "archived": [e.version for e in entries if e.stage == "archived"],
            "reported": [e.version for e in entries if e.report_path is not None],  # versions with an eval report
            "gates": gate_list(definition.gates if definition else None),
            "engine": where.get("engine"),
            "backend": where.get("backend"),
            "served": name in serving,
        })
    return rows


def entry_view(entry: Entry) -> dict:
    try:
        manifest = read_manifest(entry.path)
    except DomainlmError as exc:  # shown in the row instead of failing the whole history
        manifest = {"error": str(exc)}
    return {
        "version": entry.version,
        "ref": entry.ref,
        "stage": entry.stage,
        "name": manifest.get("name"),
        "created_at": entry.created_at,
        "artifact_id": entry.artifact_id,
        "base": manifest.get("base") or {"model_id": entry.base_model_id, "weights_sha256": entry.base_sha256},
        "data_sources": manifest.get("data_sources") or [],
        "config": manifest.get("config") or {},
        "metrics": manifest.get("metrics") or {},
        "domainlm_version": manifest.get("domainlm_version"),
        "manifest_error": manifest.get("error"),
        "has_report": bool(entry.report_path and entry.report_path.is_file()),
    }


def registry_view(registry: Registry, vertical: str) -> dict:
    """History of one vertical, newest version first, with manifest details and the registry's own events."""
    entries = registry.list(vertical)
    production = next((e.version for e in entries if e.stage == "production"), None)
    events = [{"ts": r["ts"], "actor": r["actor"], "event": r["event"], "version": r["version"],
               "previous": (r.get("detail") or {}).get("previous")}
              for r in registry.audit_log(vertical, limit=EVENTS_SHOWN)
              if r["event"] in ("register", "promote", "force", "rollback", "attach_report")]
    return {"vertical": vertical, "production": production,
            "entries": [entry_view(e) for e in sorted(entries, key=lambda e: -e.version)], "events": events}
