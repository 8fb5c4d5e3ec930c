"""The index beside the store: one row per stored version, a production history, and an audit trail.

By default a SQLite file in the registry root (`index.sqlite`). A root shared by machines names a database instead:
`index.url` in the root holds a postgresql:// URL (written by `domainlm registry index-to URL`), and every process
that opens that root (CLI, pipeline, gateway replicas) uses the same index. Every write runs in one exclusive
transaction (SQLite BEGIN IMMEDIATE, a PostgreSQL advisory lock), so two processes promoting at once serialise
instead of leaving two production rows. The artifact folders themselves never change; only this index moves stages.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import Connection

from domainlm.state import StateDB, open_state

COLUMNS = ("vertical", "version", "stage", "artifact_id", "created_at", "report_path", "base_model_id", "base_sha256")


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class Index:
    """`where`: the SQLite file or a database URL."""

    def __init__(self, where: Path | str):
        self.db: StateDB = open_state(where, schema="registry")

    @property
    def describe(self) -> str:
        return self.db.describe

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        with self.db.begin(exclusive=True) as db:
            yield db

    @contextmanager
    def reader(self) -> Iterator[Connection]:
        with self.db.reader() as db:
            yield db

    # --- queries -------------------------------------------------------------------------------------------------
    def rows(self, vertical: str | None = None) -> list[dict]:
        with self.reader() as db:
            if vertical is None:
                cur = db.execute(text("SELECT * FROM versions ORDER BY vertical, version"))
            else:
                cur = db.execute(text("SELECT * FROM versions WHERE vertical = :v ORDER BY version"), {"v": vertical})
            return [dict(r) for r in cur.mappings()]

    def row(self, vertical: str, version: int) -> dict | None:
        with self.reader() as db:
            r = db.execute(text("SELECT * FROM versions WHERE vertical = :v AND version = :n"),
                           {"v": vertical, "n": version}).mappings().first()
            return dict(r) if r else None

    def production_row(self, vertical: str) -> dict | None:
        with self.reader() as db:
            r = db.execute(text("SELECT * FROM versions WHERE vertical = :v AND stage = 'production'"),
                           {"v": vertical}).mappings().first()
            return dict(r) if r else None

    def audit_rows(self, vertical: str | None = None, limit: int = 100) -> list[dict]:
        with self.reader() as db:
            sql = "SELECT * FROM audit" + (" WHERE vertical = :v" if vertical else "") + " ORDER BY id DESC LIMIT :n"
            out = [dict(r) for r in db.execute(text(sql), {"v": vertical, "n": limit}).mappings()]
        for r in out:
            r["detail"] = json.loads(r["detail"])
        return out

    # --- writes (call inside transaction()) --------------------------------------------------------------------
    @staticmethod
    def audit(db: Connection, *, actor: str, event: str, vertical: str, version: int | None, **detail) -> None:
        db.execute(text("INSERT INTO audit (ts, actor, event, vertical, version, detail) "
                        "VALUES (:ts, :actor, :event, :vertical, :version, :detail)"),
                   {"ts": now(), "actor": actor, "event": event, "vertical": vertical, "version": version,
                    "detail": json.dumps(detail, sort_keys=True, default=str)})

    @staticmethod
    def next_version(db: Connection, vertical: str) -> int:
        found = db.execute(text("SELECT MAX(version) FROM versions WHERE vertical = :v"), {"v": vertical}).scalar()
        return (found or 0) + 1
