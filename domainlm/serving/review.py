"""Answers held for review: a vertical whose guardrails say `hold` keeps a flagged answer here instead of sending it.

The client gets the hold notice and a review id; a reviewer (admin scope) lists pending answers
(GET /admin/reviews) and releases or rejects each (POST /admin/reviews/ID/release|reject, audited); the client
reads the outcome with GET /v1/reviews/ID using the same API key. Held answers pass PII redaction first, and the
prompt is never stored here (the audit trail keeps what the vertical's logging rules allow).
"""

from __future__ import annotations

import secrets
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from domainlm.errors import DomainlmError
from domainlm.serving.auth import connect_shared, utc_ms
from domainlm.verticals.pii import redact_text

SCHEMA = """
CREATE TABLE IF NOT EXISTS held_answers (
    id         TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    request_id TEXT NOT NULL,
    key_id     TEXT,
    vertical   TEXT NOT NULL,
    model      TEXT,
    rule       TEXT NOT NULL,
    answer     TEXT NOT NULL,
    status     TEXT NOT NULL DEFAULT 'pending',   -- pending | released | rejected
    decided_by TEXT,
    decided_at TEXT,
    note       TEXT
);
CREATE INDEX IF NOT EXISTS held_answers_status ON held_answers (status, created_at);
"""
DECISIONS = {"release": "released", "reject": "rejected"}
MAX_NOTE = 500


class ReviewError(DomainlmError):
    """A review decision that cannot be made (unknown id, already decided)."""


@dataclass(frozen=True)
class Held:
    id: str
    created_at: str
    request_id: str
    key_id: str | None
    vertical: str
    model: str | None
    rule: str
    answer: str
    status: str
    decided_by: str | None
    decided_at: str | None
    note: str | None

    def to_dict(self, with_answer: bool = True) -> dict:
        out = dict(self.__dict__)
        if not with_answer:
            out.pop("answer")
        return out


class ReviewQueue:
    def __init__(self, db: str | Path):
        self.path = Path(db)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db_:
            db_.executescript(SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        return connect_shared(self.path)

    def hold(self, request_id: str, key_id: str | None, vertical: str, model: str | None, rule: str,
             answer: str, review_id: str | None = None) -> str:
        review_id = review_id or f"rev-{secrets.token_hex(8)}"
        with self._connect() as db:
            db.execute("INSERT INTO held_answers (id, created_at, request_id, key_id, vertical, model, rule, answer) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                       (review_id, utc_ms(), request_id, key_id, vertical, model, rule, redact_text(answer)))
        return review_id

    def get(self, review_id: str) -> Held | None:
        with self._connect() as db:
            row = db.execute("SELECT * FROM held_answers WHERE id = ?", (review_id,)).fetchone()
        return Held(**dict(row)) if row else None

    def list(self, status: str | None = "pending", limit: int = 100) -> list[Held]:
        query, args = "SELECT * FROM held_answers", []
        if status:
            query, args = query + " WHERE status = ?", [status]
        with self._connect() as db:
            rows = db.execute(query + " ORDER BY created_at DESC LIMIT ?", (*args, limit)).fetchall()
        return [Held(**dict(r)) for r in rows]

    def decide(self, review_id: str, decision: str, actor: str, note: str | None = None) -> Held:
        if decision not in DECISIONS:
            raise ReviewError(f"decision must be one of {sorted(DECISIONS)}, not {decision!r}")
        note = " ".join((note or "").split())[:MAX_NOTE] or None
        with self._connect() as db:
            # one statement decides: two reviewers racing on the same answer cannot both win
            done = db.execute("UPDATE held_answers SET status = ?, decided_by = ?, decided_at = ?, note = ? "
                              "WHERE id = ? AND status = 'pending'",
                              (DECISIONS[decision], actor, utc_ms(), note, review_id)).rowcount
        held = self.get(review_id)
        if held is None:
            raise ReviewError(f"no held answer with id '{review_id}'")
        if not done:
            raise ReviewError(f"'{review_id}' was already {held.status} by {held.decided_by} at {held.decided_at}")
        return held
