"""Vertical suspension: the emergency switch (应急响应) that stops a vertical on every gateway replica at once.

`domainlm vertical suspend NAME --reason …` (or POST /admin/verticals/NAME/suspend) writes one row to the shared
gateway database; every replica reads the suspended set at most once per `max_age_s` (0.5 s) and answers the
vertical's requests with a 503 naming the reason until `resume`. Each switch is appended to `vertical_events` and
to the audit log (endpoint `admin/vertical/suspend` or `…/resume`), so who stopped what, when and why stays on record.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from domainlm.errors import DomainlmError
from domainlm.serving.auth import connect_shared, utc_ms

SCHEMA = """
CREATE TABLE IF NOT EXISTS vertical_suspensions (
    vertical     TEXT PRIMARY KEY,
    reason       TEXT NOT NULL,
    actor        TEXT NOT NULL,
    suspended_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS vertical_events (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    ts       TEXT NOT NULL,
    vertical TEXT NOT NULL,
    action   TEXT NOT NULL,          -- suspend | resume
    reason   TEXT,
    actor    TEXT NOT NULL
);
"""
MAX_REASON = 500


class SuspensionError(DomainlmError):
    """A suspend/resume that cannot be done (bad name, empty reason, not suspended)."""


@dataclass(frozen=True)
class Suspension:
    vertical: str
    reason: str
    actor: str
    suspended_at: str

    def to_dict(self) -> dict:
        return {"vertical": self.vertical, "reason": self.reason, "actor": self.actor,
                "suspended_at": self.suspended_at}


class SuspensionStore:
    def __init__(self, db: str | Path, max_age_s: float = 0.5):
        self.path = Path(db)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.max_age_s = max_age_s
        self._active: tuple[dict[str, Suspension], float] = ({}, float("-inf"))
        with self._connect() as db_:
            db_.executescript(SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        return connect_shared(self.path)

    def suspend(self, vertical: str, reason: str, actor: str) -> Suspension:
        from domainlm.registry.names import RegistryError, check_vertical

        try:
            check_vertical(vertical)
        except RegistryError as exc:
            raise SuspensionError(str(exc)) from None
        reason = " ".join((reason or "").split())
        if not reason or len(reason) > MAX_REASON:
            raise SuspensionError(f"give a reason of 1-{MAX_REASON} characters: callers see it in the 503")
        record = Suspension(vertical, reason, actor, utc_ms())
        with self._connect() as db:
            db.execute("INSERT INTO vertical_suspensions (vertical, reason, actor, suspended_at) VALUES (?, ?, ?, ?) "
                       "ON CONFLICT(vertical) DO UPDATE SET reason = excluded.reason, actor = excluded.actor",
                       (vertical, reason, actor, record.suspended_at))
            self._event(db, vertical, "suspend", reason, actor)
        self._active = ({}, float("-inf"))
        return self.get(vertical) or record

    def resume(self, vertical: str, actor: str) -> Suspension:
        with self._connect() as db:
            row = db.execute("SELECT * FROM vertical_suspensions WHERE vertical = ?", (vertical,)).fetchone()
            if row is None:
                raise SuspensionError(f"vertical '{vertical}' is not suspended (see `domainlm vertical status`)")
            db.execute("DELETE FROM vertical_suspensions WHERE vertical = ?", (vertical,))
            self._event(db, vertical, "resume", row["reason"], actor)
        self._active = ({}, float("-inf"))
        return Suspension(row["vertical"], row["reason"], row["actor"], row["suspended_at"])

    @staticmethod
    def _event(db, vertical: str, action: str, reason: str | None, actor: str) -> None:
        db.execute("INSERT INTO vertical_events (ts, vertical, action, reason, actor) VALUES (?, ?, ?, ?, ?)",
                   (utc_ms(), vertical, action, reason, actor))

    def active(self) -> dict[str, Suspension]:
        """vertical → its suspension, read from the database at most once per max_age_s for every caller."""
        found, read_at = self._active
        clock = time.monotonic()
        if clock - read_at >= self.max_age_s:
            with self._connect() as db:
                found = {r["vertical"]: Suspension(r["vertical"], r["reason"], r["actor"], r["suspended_at"])
                         for r in db.execute("SELECT * FROM vertical_suspensions")}
            self._active = (found, clock)
        return found

    def get(self, vertical: str | None) -> Suspension | None:
        return self.active().get(vertical) if vertical else None

    def events(self, limit: int = 100) -> list[dict]:
        with self._connect() as db:
            return [dict(r) for r in db.execute("SELECT * FROM vertical_events ORDER BY id DESC LIMIT ?", (limit,))]


def switch(store: SuspensionStore, action: str, vertical: str, actor: str, audit, reason: str | None = None):
    """Suspend or resume `vertical` and put the switch on the audit record. `audit(**row)` writes one row (the
    gateway's AuditLog.record, or audit.append for the CLI)."""
    import secrets

    record = store.suspend(vertical, reason or "", actor) if action == "suspend" else store.resume(vertical, actor)
    audit(request_id=f"switch-{secrets.token_hex(6)}",
          key_id=actor, endpoint=f"admin/vertical/{action}", vertical=vertical, status=200,
          policy={"action": action, "reason": record.reason})
    return record
