"""The SQLite index beside the store: one row per stored version, a production history, and an audit trail.

Every write runs in one `BEGIN IMMEDIATE` transaction, so two processes promoting at once serialise instead of
leaving two production rows. The artifact folders themselves never change; only this index moves stages.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS versions (
    vertical      TEXT NOT NULL,
    version       INTEGER NOT NULL,
    stage         TEXT NOT NULL CHECK (stage IN ('candidate', 'production', 'archived')),
    artifact_id   TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    report_path   TEXT,
    base_model_id TEXT,
    base_sha256   TEXT,
    PRIMARY KEY (vertical, version)
);
CREATE UNIQUE INDEX IF NOT EXISTS one_production ON versions (vertical) WHERE stage = 'production';
CREATE TABLE IF NOT EXISTS production_history (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    vertical TEXT NOT NULL,
    version  INTEGER NOT NULL,
    active   INTEGER NOT NULL DEFAULT 1,   -- 0 once a rollback has popped it
    ts       TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS audit (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    ts       TEXT NOT NULL,
    actor    TEXT NOT NULL,
    event    TEXT NOT NULL,               -- register | attach_report | promote | force | rollback
    vertical TEXT NOT NULL,
    version  INTEGER,
    detail   TEXT NOT NULL                -- JSON
);
"""

COLUMNS = ("vertical", "version", "stage", "artifact_id", "created_at", "report_path", "base_model_id", "base_sha256")


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class Index:
    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        db = self._connect()
        try:
            db.executescript(SCHEMA)  # executescript manages its own transaction
        finally:
            db.close()

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA journal_mode=WAL")
        return db

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        db = self._connect()
        try:
            db.execute("BEGIN IMMEDIATE")
            yield db
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        finally:
            db.close()

    @contextmanager
    def reader(self) -> Iterator[sqlite3.Connection]:
        db = self._connect()
        try:
            yield db
        finally:
            db.close()

    # --- queries -------------------------------------------------------------------------------------------------
    def rows(self, vertical: str | None = None) -> list[dict]:
        with self.reader() as db:
            if vertical is None:
                cur = db.execute("SELECT * FROM versions ORDER BY vertical, version")
            else:
                cur = db.execute("SELECT * FROM versions WHERE vertical = ? ORDER BY version", (vertical,))
            return [dict(r) for r in cur.fetchall()]

    def row(self, vertical: str, version: int) -> dict | None:
        with self.reader() as db:
            r = db.execute("SELECT * FROM versions WHERE vertical = ? AND version = ?", (vertical, version)).fetchone()
            return dict(r) if r else None

    def production_row(self, vertical: str) -> dict | None:
        with self.reader() as db:
            r = db.execute("SELECT * FROM versions WHERE vertical = ? AND stage = 'production'", (vertical,)).fetchone()
            return dict(r) if r else None

    def audit_rows(self, vertical: str | None = None, limit: int = 100) -> list[dict]:
        with self.reader() as db:
            sql = "SELECT * FROM audit" + (" WHERE vertical = ?" if vertical else "") + " ORDER BY id DESC LIMIT ?"
            args = (vertical, limit) if vertical else (limit,)
            out = [dict(r) for r in db.execute(sql, args).fetchall()]
        for r in out:
            r["detail"] = json.loads(r["detail"])
        return out

    # --- writes (call inside transaction()) --------------------------------------------------------------------
    @staticmethod
    def audit(db: sqlite3.Connection, *, actor: str, event: str, vertical: str, version: int | None,
              **detail) -> None:
        db.execute("INSERT INTO audit (ts, actor, event, vertical, version, detail) VALUES (?, ?, ?, ?, ?, ?)",
                   (now(), actor, event, vertical, version, json.dumps(detail, sort_keys=True, default=str)))

    @staticmethod
    def next_version(db: sqlite3.Connection, vertical: str) -> int:
        r = db.execute("SELECT MAX(version) AS v FROM versions WHERE vertical = ?", (vertical,)).fetchone()
        return (r["v"] or 0) + 1
