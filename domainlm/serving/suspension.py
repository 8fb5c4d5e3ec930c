"""Vertical suspension: the emergency switch (应急响应) that stops a vertical on every gateway replica at once.

`domainlm vertical suspend NAME --reason …` (or POST /admin/verticals/NAME/suspend) writes one row to the shared
gateway database; every replica reads the suspended set at most once per `max_age_s` (0.5 s) and answers the
vertical's requests with a 503 naming the reason until `resume`. Each switch is appended to `vertical_events` and
to the audit log (endpoint `admin/vertical/suspend` or `…/resume`), so who stopped what, when and why stays on record.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import text

from domainlm.errors import DomainlmError
from domainlm.serving.auth import utc_ms
from domainlm.state import StateDB, open_state

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
    """`db`: a SQLite path, a postgresql:// URL, or an open StateDB (the one the keys live in)."""

    def __init__(self, db: str | Path | StateDB, max_age_s: float = 0.5):
        self.db = open_state(db)
        self.max_age_s = max_age_s
        self._active: tuple[dict[str, Suspension], float] = ({}, float("-inf"))
        self.on_switch = None     # called with the vertical after a suspend/resume (the Redis broadcast hooks in)

    def forget(self) -> None:
        """Re-read the suspended set on the next request (a switch here or, said the broadcast, elsewhere)."""
        self._active = ({}, float("-inf"))

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
        with self.db.begin() as db:
            db.execute(text("INSERT INTO vertical_suspensions (vertical, reason, actor, suspended_at) "
                            "VALUES (:vertical, :reason, :actor, :at) ON CONFLICT (vertical) "
                            "DO UPDATE SET reason = excluded.reason, actor = excluded.actor"),
                       {"vertical": vertical, "reason": reason, "actor": actor, "at": record.suspended_at})
            self._event(db, vertical, "suspend", reason, actor)
        self._switched(vertical)
        return self.get(vertical) or record

    def _switched(self, vertical: str) -> None:
        self.forget()
        if self.on_switch is not None:
            self.on_switch(vertical)

    def resume(self, vertical: str, actor: str) -> Suspension:
        with self.db.begin() as db:
            row = db.execute(text("DELETE FROM vertical_suspensions WHERE vertical = :v RETURNING *"),
                             {"v": vertical}).mappings().first()
            if row is None:
                raise SuspensionError(f"vertical '{vertical}' is not suspended (see `domainlm vertical status`)")
            self._event(db, vertical, "resume", row["reason"], actor)
        self._switched(vertical)
        return Suspension(row["vertical"], row["reason"], row["actor"], row["suspended_at"])

    @staticmethod
    def _event(db, vertical: str, action: str, reason: str | None, actor: str) -> None:
        db.execute(text("INSERT INTO vertical_events (ts, vertical, action, reason, actor) "
                        "VALUES (:ts, :vertical, :action, :reason, :actor)"),
                   {"ts": utc_ms(), "vertical": vertical, "action": action, "reason": reason, "actor": actor})

    def active(self) -> dict[str, Suspension]:
        """vertical → its suspension, read from the database at most once per max_age_s for every caller."""
        found, read_at = self._active
        clock = time.monotonic()
        if clock - read_at >= self.max_age_s:
            with self.db.begin() as db:
                found = {r["vertical"]: Suspension(r["vertical"], r["reason"], r["actor"], r["suspended_at"])
                         for r in db.execute(text("SELECT * FROM vertical_suspensions")).mappings()}
            self._active = (found, clock)
        return found

    def get(self, vertical: str | None) -> Suspension | None:
        return self.active().get(vertical) if vertical else None

    def events(self, limit: int = 100) -> list[dict]:
        with self.db.begin() as db:
            return [dict(r) for r in db.execute(text("SELECT * FROM vertical_events ORDER BY id DESC LIMIT :n"),
                                                {"n": limit}).mappings()]


def switch(store: SuspensionStore, action: str, vertical: str, actor: str, audit, reason: str | None = None):
    """Suspend or resume `vertical` and put the switch on the audit record. `audit(**row)` writes one row (the
    gateway's AuditLog.record, or audit.append for the CLI)."""
    import secrets

    record = store.suspend(vertical, reason or "", actor) if action == "suspend" else store.resume(vertical, actor)
    audit(request_id=f"switch-{secrets.token_hex(6)}",
          key_id=actor, endpoint=f"admin/vertical/{action}", vertical=vertical, status=200,
          policy={"action": action, "reason": record.reason})
    return record
