"""API keys: stored as sha256 hashes in the gateway's state database, each with scopes and per-minute limits.

A key looks like `dlm_<id>_<secret>`; only sha256(key) is stored, so the database never holds a usable key. Scopes:
a vertical name (`medical`), `*` (every vertical), `base` (the base models), `admin` (the /admin routes).
"""

from __future__ import annotations

import json
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import text

from domainlm import paths
from domainlm.errors import DomainlmError
from domainlm.hashing import sha256_bytes
from domainlm.state import StateDB, open_state

SPECIAL_SCOPES = ("*", "admin", "base")


class KeyStoreError(DomainlmError):
    """A key operation cannot be done (unknown id, bad scope)."""


@dataclass(frozen=True)
class ApiKey:
    id: str
    name: str
    scopes: tuple[str, ...]
    rpm: int | None
    tpm: int | None
    created_at: str
    revoked_at: str | None = None

    def can_use(self, vertical: str | None) -> bool:
        """vertical None = a base model: raw base access needs the explicit 'base' scope ('*' is every vertical)."""
        if vertical is None:
            return "base" in self.scopes
        return "*" in self.scopes or vertical in self.scopes

    @property
    def admin(self) -> bool:
        return "admin" in self.scopes

    def to_dict(self) -> dict:
        return {"id": self.id, "name": self.name, "scopes": list(self.scopes), "rpm": self.rpm, "tpm": self.tpm,
                "created_at": self.created_at, "revoked_at": self.revoked_at}


def default_db() -> Path:
    return paths.home() / "gateway.sqlite"


def utc_ms(now: float | None = None) -> str:
    """A UTC timestamp with milliseconds, the form every gateway table and audit row stores (sorts as text)."""
    now = time.time() if now is None else now
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}Z"


def check_scopes(scopes: list[str]) -> list[str]:
    from domainlm.registry.names import RegistryError, check_vertical

    out = []
    for scope in scopes:
        scope = scope.strip()
        if scope in SPECIAL_SCOPES:
            out.append(scope)
            continue
        try:
            out.append(check_vertical(scope))
        except RegistryError:
            raise KeyStoreError(f"invalid scope {scope!r}: use a vertical name, '*', 'base' or 'admin'") from None
    if not out:
        raise KeyStoreError("a key needs at least one scope")
    return sorted(set(out))


MAX_CACHED = 10_000   # known keys kept in memory (least recently used evicted first)
MAX_UNKNOWN = 1_024   # unknown secrets remembered (so a flood of random tokens never evicts real keys)


class KeyStore:
    """`db`: a SQLite path, a postgresql:// URL, or an open StateDB (default $DOMAINLM_HOME/gateway.sqlite)."""

    def __init__(self, db: str | Path | StateDB | None = None, cache_ttl_s: float = 2.0):
        self.db = open_state(db or default_db())
        self.cache_ttl_s = cache_ttl_s
        # bounded LRUs: found keys, and a small one for unknown secrets (a flood of random tokens evicts only those)
        self._cache: OrderedDict[str, tuple[ApiKey, float]] = OrderedDict()
        self._unknown: OrderedDict[str, float] = OrderedDict()
        self._revoked: tuple[frozenset[str], float] = (frozenset(), 0.0)
        self.on_revoke = None     # called with the key id after a revocation (the Redis broadcast hooks in here)

    @staticmethod
    def _row(row) -> ApiKey:
        return ApiKey(id=row["id"], name=row["name"], scopes=tuple(json.loads(row["scopes"])), rpm=row["rpm"],
                      tpm=row["tpm"], created_at=row["created_at"], revoked_at=row["revoked_at"])

    def create(self, name: str, scopes: list[str], rpm: int | None = None,
               tpm: int | None = None) -> tuple[str, ApiKey]:
        """(the plaintext key — shown once, never stored —, its record)."""
        if not name or len(name) > 64 or not name.isprintable():
            raise KeyStoreError(f"invalid key name {name!r}: 1-64 printable characters")
        for label, value in (("rpm", rpm), ("tpm", tpm)):
            if value is not None and value < 1:
                raise KeyStoreError(f"{label} must be a positive integer")
        scopes = check_scopes(scopes)
        key_id = secrets.token_hex(4)
        plaintext = f"dlm_{key_id}_{secrets.token_urlsafe(24)}"
        created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        with self.db.begin() as db:
            db.execute(text("INSERT INTO api_keys (id, name, key_sha256, scopes, rpm, tpm, created_at) "
                            "VALUES (:id, :name, :sha, :scopes, :rpm, :tpm, :created)"),
                       {"id": key_id, "name": name, "sha": sha256_bytes(plaintext), "scopes": json.dumps(scopes),
                        "rpm": rpm, "tpm": tpm, "created": created})
        return plaintext, ApiKey(key_id, name, tuple(scopes), rpm, tpm, created)

    def list(self, include_revoked: bool = True) -> list[ApiKey]:
        with self.db.begin() as db:
            rows = db.execute(text("SELECT * FROM api_keys ORDER BY created_at, id")).mappings().all()
        keys = [self._row(r) for r in rows]
        return keys if include_revoked else [k for k in keys if not k.revoked_at]

    def revoke(self, key_id: str) -> ApiKey:
        with self.db.begin() as db:
            db.execute(text("UPDATE api_keys SET revoked_at = :now WHERE id = :id AND revoked_at IS NULL"),
                       {"now": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "id": key_id})
            row = db.execute(text("SELECT * FROM api_keys WHERE id = :id"), {"id": key_id}).mappings().first()
        if row is None:
            raise KeyStoreError(f"no API key with id '{key_id}' (see `domainlm keys list`)")
        self.forget()
        if self.on_revoke is not None:
            self.on_revoke(key_id)
        return self._row(row)

    def forget(self) -> None:
        """Drop every cached lookup (a key was revoked here or, said the broadcast, on another replica)."""
        self._cache.clear()
        self._unknown.clear()
        self._revoked = (frozenset(), 0.0)

    def is_revoked(self, key_id: str, max_age_s: float = 1.0) -> bool:
        """Whether the key is revoked now, read from the database at most once per `max_age_s` for all callers:
        streams in flight re-check while they relay, so a revocation (CLI or admin API) ends them within a second."""
        ids, read_at = self._revoked
        clock = time.monotonic()
        if clock - read_at >= max_age_s:
            with self.db.begin() as db:
                ids = frozenset(db.execute(text("SELECT id FROM api_keys WHERE revoked_at IS NOT NULL")).scalars())
            self._revoked = (ids, clock)
        return key_id in ids

    def peek(self, authorization: str) -> bool:
        """Whether this `Bearer <key>` is a valid key already in the cache (no database access): a throttled
        address still lets through keys that recently worked (several users behind one NAT)."""
        if not authorization.lower().startswith("bearer "):
            return False
        cached = self._cache.get(sha256_bytes(authorization[7:].strip()))
        return bool(cached and cached[1] > time.monotonic())

    def authenticate(self, plaintext: str) -> ApiKey | None:
        """The active key for this secret, or None. Lookups are cached for cache_ttl_s (hot path)."""
        digest = sha256_bytes(plaintext)
        clock = time.monotonic()
        cached = self._cache.get(digest)
        if cached and cached[1] > clock:
            # a key revoked through another replica leaves this cache within a second, broadcast or not
            if self.is_revoked(cached[0].id):
                self._cache.pop(digest, None)
                return None
            self._cache.move_to_end(digest)
            return cached[0]
        if self._unknown.get(digest, 0.0) > clock:
            return None
        with self.db.begin() as db:
            row = db.execute(text("SELECT * FROM api_keys WHERE key_sha256 = :sha AND revoked_at IS NULL"),
                             {"sha": digest}).mappings().first()
        if row is None:
            self._unknown[digest] = clock + self.cache_ttl_s
            while len(self._unknown) > MAX_UNKNOWN:
                self._unknown.popitem(last=False)
            return None
        key = self._row(row)
        self._cache[digest] = (key, clock + self.cache_ttl_s)
        self._cache.move_to_end(digest)
        while len(self._cache) > MAX_CACHED:
            self._cache.popitem(last=False)
        return key
