"""Audit log of every gateway request (SQLite), written by a background thread so requests never wait on disk.

What is kept of a prompt follows the vertical's logging rules (domainlm.verticals.policy.audit_fields): the text,
only its sha256 (medical), or nothing. Answers are kept only where prompts may be kept. Kept text has its PII
(names after a cue, phone numbers, PRC ID numbers, emails, medical record numbers) replaced by placeholders first
(domainlm.verticals.pii).
"""

from __future__ import annotations

import json
import os
import queue
import secrets
import sqlite3
import threading
import time
from pathlib import Path

from domainlm.serving.auth import utc_ms
from domainlm.verticals.pii import redact_text

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
INSERT = f"INSERT INTO requests ({', '.join(FIELDS)}) VALUES ({', '.join('?' * len(FIELDS))})"
MAX_TEXT = 8000  # characters of prompt/answer text kept per row
PURGE_EVERY_S = 3600.0  # how often rows past the retention period are deleted


def load_secret(path: Path) -> bytes:
    """The gateway's HMAC key for hashed prompts: 32 random bytes in a 0600 file, created on first use."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:          # another replica created it first
        return path.read_bytes()
    with os.fdopen(fd, "wb") as handle:
        handle.write(secrets.token_bytes(32))
    return path.read_bytes()


def _values(row: dict) -> tuple:
    """One audit row in FIELDS order: timestamped, texts capped, policy as JSON."""
    row.setdefault("ts", utc_ms())
    for text_field in ("prompt", "answer"):   # PII redacted before the text reaches the disk
        if isinstance(row.get(text_field), str):
            row[text_field] = redact_text(row[text_field])[:MAX_TEXT]
    if isinstance(row.get("policy"), (dict, list)):
        row["policy"] = json.dumps(row["policy"], ensure_ascii=False)
    row["stream"] = int(bool(row.get("stream")))
    return tuple(row.get(f) for f in FIELDS)


def append(path: str | Path, **row) -> None:
    """Write one audit row now, without a running gateway (operator commands: `domainlm vertical suspend`)."""
    db = sqlite3.connect(path, timeout=30)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.executescript(SCHEMA)
        with db:
            db.execute(INSERT, _values(row))
    finally:
        db.close()


class AuditLog:
    """Rows are queued (bounded: `max_queue`) and written in batches by one thread. A failed write (disk full, a
    locked database) is retried with backoff until it succeeds, the rows kept; while it fails, rows beyond the
    queue's bound are dropped and counted. `status()` says which, for /ready and /metrics."""

    def __init__(self, path: str | Path, flush_interval_s: float = 0.5, max_queue: int = 100_000,
                 busy_timeout_s: float = 5.0, retention_days: float | None = None,
                 secret_file: str | Path | None = None):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.retention_days = retention_days
        self.secret = load_secret(Path(secret_file) if secret_file else self.path.parent / "audit-hmac.key")
        self.flush_interval_s = flush_interval_s
        self.busy_timeout_s = busy_timeout_s
        db = sqlite3.connect(self.path)
        db.execute("PRAGMA journal_mode=WAL")
        db.executescript(SCHEMA)
        db.close()
        self.dropped = 0                 # rows lost because the queue was full while writes failed
        self.failures = 0                # failed write attempts
        self.last_error: str | None = None   # set while writes fail, cleared by the next success
        self.purge()    # retention applies at start, then every PURGE_EVERY_S from the writer thread
        self._closing = False
        self._queue: queue.Queue = queue.Queue(maxsize=max_queue)
        self._thread = threading.Thread(target=self._writer, name="audit-writer", daemon=True)
        self._thread.start()

    def status(self) -> dict:
        return {"ok": self.last_error is None and self._thread.is_alive(), "error": self.last_error,
                "dropped_rows": self.dropped, "failed_writes": self.failures, "queued": self._queue.qsize()}

    def record(self, **row) -> None:
        try:
            self._queue.put_nowait(_values(row))
        except queue.Full:
            self.dropped += 1

    def _commit(self, holder: list, sql: str, batch: list) -> None:
        """Write the batch, retrying with backoff (0.1 s → 5 s) until it lands; only a closing log gives up."""
        delay = 0.1
        while True:
            try:
                if holder[0] is None:
                    holder[0] = sqlite3.connect(self.path, timeout=self.busy_timeout_s)
                holder[0].executemany(sql, batch)
                holder[0].commit()
                self.last_error = None
                return
            except sqlite3.Error as exc:
                self.failures += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                try:
                    holder[0].close()
                except (sqlite3.Error, AttributeError):
                    pass
                holder[0] = None
                if self._closing:
                    self.dropped += len(batch)
                    return
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

    def _writer(self) -> None:
        holder: list = [None]
        sql = INSERT
        while True:
            item = self._queue.get()
            batch, stop = [], False
            while True:
                if item is None:
                    stop = True
                elif isinstance(item, threading.Event):
                    if batch:
                        self._commit(holder, sql, batch)
                    batch = []
                    item.set()
                else:
                    batch.append(item)
                try:
                    item = self._queue.get(timeout=self.flush_interval_s if batch else 0.001)
                except queue.Empty:
                    break
            if batch:
                self._commit(holder, sql, batch)
            if self.retention_days and time.monotonic() - self._purged_at >= PURGE_EVERY_S:
                self.purge()
            if stop:
                if holder[0] is not None:
                    holder[0].close()
                return

    def flush(self, timeout: float = 10.0) -> None:
        """Block until everything recorded so far is on disk (tests, shutdown)."""
        done = threading.Event()
        try:
            self._queue.put(done, timeout=timeout)
        except queue.Full:
            return
        done.wait(timeout)

    def close(self) -> None:
        self.flush()
        self._closing = True
        try:
            self._queue.put(None, timeout=10)
        except queue.Full:
            return
        self._thread.join(10)

    def purge(self, now: float | None = None) -> int:
        """Delete rows older than retention_days (prompt text and digests with them); returns how many."""
        self._purged_at = time.monotonic()
        if not self.retention_days:
            return 0
        cutoff = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime((now or time.time()) - self.retention_days * 86400))
        try:
            db = sqlite3.connect(self.path, timeout=self.busy_timeout_s)
            with db:
                deleted = db.execute("DELETE FROM requests WHERE ts < ?", (cutoff,)).rowcount
            db.close()
            return deleted
        except sqlite3.Error as exc:   # retried at the next purge; the writes matter more
            self.last_error = f"retention purge: {type(exc).__name__}: {exc}"
            return 0

    def rows(self, limit: int = 100, **where) -> list[dict]:
        self.flush()
        db = sqlite3.connect(self.path, timeout=30)
        db.row_factory = sqlite3.Row
        clauses = " AND ".join(f"{k} = ?" for k in where if k in FIELDS)
        sql = "SELECT * FROM requests" + (f" WHERE {clauses}" if clauses else "") + " ORDER BY id DESC LIMIT ?"
        rows = [dict(r) for r in db.execute(sql, (*[v for k, v in where.items() if k in FIELDS], limit))]
        db.close()
        return rows
