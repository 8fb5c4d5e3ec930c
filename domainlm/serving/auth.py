"""API keys: stored as sha256 hashes in SQLite, each with scopes and per-minute limits.

A key looks like `dlm_<id>_<secret>`; only sha256(key) is stored, so the database never holds a usable key. Scopes:
a vertical name (`medical`), `*` (every vertical), `base` (the base models), `admin` (the /admin routes).
"""

from __future__ import annotations

import json
from collections import OrderedDict
import secrets
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from domainlm import paths
from domainlm.errors import DomainlmError
from domainlm.hashing import sha256_bytes

SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    key_sha256  TEXT NOT NULL UNIQUE,
    scopes      TEXT NOT NULL,          -- JSON list
    rpm         INTEGER,                -- NULL = the gateway's default
    tpm         INTEGER,
    created_at  TEXT NOT NULL,
    revoked_at  TEXT
);
"""
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


def connect_shared(path: Path) -> sqlite3.Connection:
    """The gateway database every replica shares (keys, suspensions): WAL, rows by name, 30 s busy wait."""
    db = sqlite3.connect(path, timeout=30)
    db.row_factory = sqlite3.Row
    db.execute("PRAGMA journal_mode=WAL")
    return db


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
    def __init__(self, db: str | Path | None = None, cache_ttl_s: float = 2.0):
        self.path = Path(db) if db else default_db()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.cache_ttl_s = cache_ttl_s
        # bounded LRUs: found keys, and a small one for unknown secrets (a flood of random tokens evicts only those)
        self._cache: OrderedDict[str, tuple[ApiKey, float]] = OrderedDict()
        self._unknown: OrderedDict[str, float] = OrderedDict()
        self._revoked: tuple[frozenset[str], float] = (frozenset(), 0.0)
        with self._connect() as db_:
            db_.executescript(SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        return connect_shared(self.path)

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
        with self._connect() as db:
            db.execute("INSERT INTO api_keys (id, name, key_sha256, scopes, rpm, tpm, created_at) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?)",
                       (key_id, name, sha256_bytes(plaintext), json.dumps(scopes), rpm, tpm, created))
        return plaintext, ApiKey(key_id, name, tuple(scopes), rpm, tpm, created)

    def list(self, include_revoked: bool = True) -> list[ApiKey]:
        with self._connect() as db:
            rows = db.execute("SELECT * FROM api_keys ORDER BY created_at, id").fetchall()
        keys = [self._row(r) for r in rows]
        return keys if include_revoked else [k for k in keys if not k.revoked_at]

    def revoke(self, key_id: str) -> ApiKey:
        with self._connect() as db:
            found = db.execute("SELECT * FROM api_keys WHERE id = ?", (key_id,)).fetchone()
            if found is None:
                raise KeyStoreError(f"no API key with id '{key_id}' (see `domainlm keys list`)")
            db.execute("UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                       (time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), key_id))
            row = db.execute("SELECT * FROM api_keys WHERE id = ?", (key_id,)).fetchone()
        self._cache.clear()
        self._revoked = (frozenset(), 0.0)
        return self._row(row)

    def is_revoked(self, key_id: str, max_age_s: float = 1.0) -> bool:
        """Whether the key is revoked now, read from the database at most once per `max_age_s` for all callers:
        streams in flight re-check while they relay, so a revocation (CLI or admin API) ends them within a second."""
        ids, read_at = self._revoked
        clock = time.monotonic()
        if clock - read_at >= max_age_s:
            with self._connect() as db:
                ids = frozenset(r["id"] for r in db.execute("SELECT id FROM api_keys WHERE revoked_at IS NOT NULL"))
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
            self._cache.move_to_end(digest)
            return cached[0]
        if self._unknown.get(digest, 0.0) > clock:
            return None
        with self._connect() as db:
            row = db.execute("SELECT * FROM api_keys WHERE key_sha256 = ? AND revoked_at IS NULL",
                             (digest,)).fetchone()
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
