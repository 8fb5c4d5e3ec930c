"""Answers held for review: a vertical whose guardrails say `hold` keeps a flagged answer here instead of sending it.

The client gets the hold notice and a review id; a reviewer (admin scope) lists pending answers
(GET /admin/reviews) and releases or rejects each (POST /admin/reviews/ID/release|reject, audited); the client
reads the outcome with GET /v1/reviews/ID using the same API key. Held answers pass PII redaction first, and the
prompt is never stored here (the audit trail keeps what the vertical's logging rules allow).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import text

from domainlm.errors import DomainlmError
from domainlm.serving.auth import utc_ms
from domainlm.state import StateDB, open_state
from domainlm.verticals.pii import redact_text

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
    """`db`: a SQLite path, a postgresql:// URL, or an open StateDB (the one the keys live in)."""

    def __init__(self, db: str | Path | StateDB):
        self.db = open_state(db)

    def hold(self, request_id: str, key_id: str | None, vertical: str, model: str | None, rule: str,
             answer: str, review_id: str | None = None) -> str:
        review_id = review_id or f"rev-{secrets.token_hex(8)}"
        with self.db.begin() as db:
            db.execute(text("INSERT INTO held_answers (id, created_at, request_id, key_id, vertical, model, rule, "
                            "answer) VALUES (:id, :at, :request_id, :key_id, :vertical, :model, :rule, :answer)"),
                       {"id": review_id, "at": utc_ms(), "request_id": request_id, "key_id": key_id,
                        "vertical": vertical, "model": model, "rule": rule, "answer": redact_text(answer)})
        return review_id

    def get(self, review_id: str) -> Held | None:
        with self.db.begin() as db:
            row = db.execute(text("SELECT * FROM held_answers WHERE id = :id"), {"id": review_id}).mappings().first()
        return Held(**dict(row)) if row else None

    def list(self, status: str | None = "pending", limit: int = 100) -> list[Held]:
        query = "SELECT * FROM held_answers" + (" WHERE status = :status" if status else "")
        with self.db.begin() as db:
            rows = db.execute(text(query + " ORDER BY created_at DESC LIMIT :n"),
                              {"status": status, "n": limit}).mappings().all()
        return [Held(**dict(r)) for r in rows]

    def decide(self, review_id: str, decision: str, actor: str, note: str | None = None) -> Held:
        if decision not in DECISIONS:
            raise ReviewError(f"decision must be one of {sorted(DECISIONS)}, not {decision!r}")
        note = " ".join((note or "").split())[:MAX_NOTE] or None
        with self.db.begin() as db:
            # one statement decides: two reviewers racing on the same answer cannot both win
            done = db.execute(text("UPDATE held_answers SET status = :status, decided_by = :actor, "
                                   "decided_at = :at, note = :note WHERE id = :id AND status = 'pending'"),
                              {"status": DECISIONS[decision], "actor": actor, "at": utc_ms(), "note": note,
                               "id": review_id}).rowcount
        held = self.get(review_id)
        if held is None:
            raise ReviewError(f"no held answer with id '{review_id}'")
        if not done:
            raise ReviewError(f"'{review_id}' was already {held.status} by {held.decided_by} at {held.decided_at}")
        return held
