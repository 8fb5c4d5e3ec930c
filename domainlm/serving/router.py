"""Public model names → engine + engine-side name. `medical` follows production; `medical@3` is pinned.

    smollm2-135m   the base model of an engine group (scope `base`)
    medical        alias of the vertical's production version (moves on promote / rollback)
    medical@3      a pinned version; listed while it is loaded
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from domainlm.registry import Entry
from domainlm.serving.errors import APIError


@dataclass(frozen=True)
class Route:
    public: str               # the name the response reports (always pinned for adapters: medical@3)
    engine: object            # engines.base.Engine
    engine_model: str         # name on the engine (base served name, or the adapter name medical@3)
    vertical: str | None      # None for a base model
    version: int | None
    entry: Entry | None


class ModelTable:
    def __init__(self):
        self.bases: dict[str, object] = {}              # public base name → engine
        self.pinned: dict[str, Route] = {}              # medical@3 → route
        self.aliases: dict[str, str] = {}               # medical → medical@3
        self.created = int(time.time())

    def add_base(self, name: str, engine) -> None:
        self.bases[name] = engine

    def add_version(self, entry: Entry, engine) -> Route:
        route = Route(entry.ref, engine, entry.ref, entry.vertical, entry.version, entry)
        self.pinned[entry.ref] = route
        return route

    def remove_version(self, ref: str) -> None:
        if ref in self.aliases.values():
            raise APIError(409, f"'{ref}' is the production version of its vertical: promote or roll back first",
                           code="adapter_in_use")
        self.pinned.pop(ref, None)

    def set_production(self, vertical: str, ref: str) -> None:
        if ref not in self.pinned:
            raise KeyError(ref)
        self.aliases[vertical] = ref

    def verticals(self) -> list[str]:
        return sorted(self.aliases)

    def resolve(self, name: str, may_use=None) -> Route:
        """The route for a model name. An unknown name's 404 lists only what `may_use(vertical or None)` allows,
        so a key never learns the names of verticals it has no scope for."""
        if name in self.bases:
            engine = self.bases[name]
            return Route(name, engine, engine.base_name, None, None, None)
        ref = self.aliases.get(name, name)
        route = self.pinned.get(ref)
        if route is not None:
            return route
        vertical, _, version = name.partition("@")
        if version and vertical in self.aliases:
            raise APIError(404, f"model '{name}' is not loaded; the gateway serves {self.names(may_use)} "
                                f"(an admin can load it: POST /admin/load {{\"model\": \"{name}\"}})",
                           param="model", code="model_not_found")
        raise APIError(404, f"model '{name}' does not exist; the gateway serves {self.names(may_use)}", param="model",
                       code="model_not_found")

    def names(self, may_use=None) -> list[str]:
        """Every served name (bases, vertical aliases, pinned versions); with `may_use`, those it allows."""
        allowed = may_use or (lambda vertical: True)
        return ([n for n in sorted(self.bases) if allowed(None)] + [n for n in sorted(self.aliases) if allowed(n)]
                + [n for n in sorted(self.pinned) if allowed(n.partition("@")[0])])

    def cards(self) -> list[dict]:
        """/v1/models data: bases, vertical aliases (with the version they point to), pinned versions."""
        cards = []
        for name, engine in sorted(self.bases.items()):
            cards.append({"id": name, "object": "model", "created": self.created, "owned_by": "domainlm",
                          "parent": None, "max_model_len": engine.max_model_len})
        for vertical, ref in sorted(self.aliases.items()):
            route = self.pinned[ref]
            cards.append(self._card(vertical, route, alias_of=ref))
        for ref, route in sorted(self.pinned.items()):
            cards.append(self._card(ref, route))
        return cards

    def _card(self, name: str, route: Route, alias_of: str | None = None) -> dict:
        entry = route.entry
        return {"id": name, "object": "model", "created": self.created, "owned_by": "domainlm",
                "parent": route.engine.base_name, "vertical": route.vertical, "version": route.version,
                "stage": entry.stage if entry else None, "artifact_id": entry.artifact_id if entry else None,
                "alias_of": alias_of, "max_model_len": route.engine.max_model_len}
