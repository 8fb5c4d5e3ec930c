"""Audit log of every gateway request (SQLite), written by a background thread so requests never wait on disk.

What is kept of a prompt follows the vertical's logging rules (domainlm.verticals.policy.audit_fields): the text,
only its sha256 (medical), or nothing. Answers are kept only where prompts may be kept.
"""

from __future__ import annotations

import json
import queue
import sqlite3
import threading
import time
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    ts                TEXT NOT NULL,
    request_id        TEXT NOT NULL,
    key_id            TEXT,
    endpoint          TEXT NOT NULL,
    model             TEXT,
    vertical          TEXT,
    version           INTEGER,
    status            INTEGER NOT NULL,
    error             TEXT,
    stream            INTEGER NOT NULL DEFAULT 0,
    latency_ms        REAL,
    prompt_tokens     INTEGER,
    completion_tokens INTEGER,
    prompt            TEXT,
    prompt_sha256     TEXT,
    answer            TEXT,
    policy            TEXT              -- JSON: language, notes applied, refusal rule
);
CREATE INDEX IF NOT EXISTS requests_ts ON requests (ts);
"""
FIELDS = ("ts", "request_id", "key_id", "endpoint", "model", "vertical", "version", "status", "error", "stream",
          "latency_ms", "prompt_tokens", "completion_tokens", "prompt", "prompt_sha256", "answer", "policy")
MAX_TEXT = 8000  # characters of prompt/answer text kept per row


class AuditLog:
    def __init__(self, path: str | Path, flush_interval_s: float = 0.5):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.flush_interval_s = flush_interval_s
        db = sqlite3.connect(self.path)
        db.execute("PRAGMA journal_mode=WAL")
        db.executescript(SCHEMA)
        db.close()
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._writer, name="audit-writer", daemon=True)
        self._thread.start()

    def record(self, **row) -> None:
        now = time.time()
        row.setdefault("ts", time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}Z")
        for text_field in ("prompt", "answer"):
            if isinstance(row.get(text_field), str):
                row[text_field] = row[text_field][:MAX_TEXT]
        if isinstance(row.get("policy"), (dict, list)):
            row["policy"] = json.dumps(row["policy"], ensure_ascii=False)
        row["stream"] = int(bool(row.get("stream")))
        self._queue.put(tuple(row.get(f) for f in FIELDS))

    def _writer(self) -> None:
        db = sqlite3.connect(self.path, timeout=30)
        sql = f"INSERT INTO requests ({', '.join(FIELDS)}) VALUES ({', '.join('?' * len(FIELDS))})"
        while True:
            item = self._queue.get()
            batch, stop = [], False
            while True:
                if item is None:
                    stop = True
                elif isinstance(item, threading.Event):
                    db.executemany(sql, batch)
                    db.commit()
                    batch = []
                    item.set()
                else:
                    batch.append(item)
                try:
                    item = self._queue.get(timeout=self.flush_interval_s if batch else 0.001)
                except queue.Empty:
                    break
            if batch:
                db.executemany(sql, batch)
                db.commit()
            if stop:
                db.close()
                return

    def flush(self, timeout: float = 10.0) -> None:
        """Block until everything recorded so far is on disk (tests, shutdown)."""
        done = threading.Event()
        self._queue.put(done)
        done.wait(timeout)

    def close(self) -> None:
        self.flush()
        self._queue.put(None)
        self._thread.join(10)

    def rows(self, limit: int = 100, **where) -> list[dict]:
        self.flush()
        db = sqlite3.connect(self.path, timeout=30)
        db.row_factory = sqlite3.Row
        clauses = " AND ".join(f"{k} = ?" for k in where if k in FIELDS)
        sql = "SELECT * FROM requests" + (f" WHERE {clauses}" if clauses else "") + " ORDER BY id DESC LIMIT ?"
        rows = [dict(r) for r in db.execute(sql, (*[v for k, v in where.items() if k in FIELDS], limit))]
        db.close()
        return rows
