"""Immutable adapter versions + a SQLite index of stages (candidate → production → archived) + promotion gates."""

from domainlm.registry.names import NotFound, RegistryError, parse_ref
from domainlm.registry.store import Entry, Registry, resolve_artifact

__all__ = ["Entry", "NotFound", "Registry", "RegistryError", "parse_ref", "resolve_artifact"]
