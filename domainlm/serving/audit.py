"""Audit log of every gateway request (the state database: SQLite or PostgreSQL), written in batches by a background
thread so requests never wait on the database.

What is kept of a prompt follows the vertical's logging rules (domainlm.verticals.policy.audit_fields): the text,
only its sha256 (medical), or nothing. Answers are kept only where prompts may be kept. Kept text has its PII
(names after a cue, phone numbers, PRC ID numbers, emails, medical record numbers) replaced by placeholders first
(domainlm.verticals.pii).
"""

from __future__ import annotations

import json
import os
import queue
from concurrent.futures import Future
import secrets
import threading
import time
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from domainlm import paths
from domainlm.serving.auth import utc_ms
from domainlm.state import StateDB, open_state
from domainlm.state.schema import requests
from domainlm.verticals.pii import redact_text

FIELDS = ("ts", "request_id", "key_id", "endpoint", "model", "vertical", "version", "status", "error", "stream",
          "latency_ms", "prompt_tokens", "completion_tokens", "prompt", "prompt_sha256", "answer", "policy")
INSERT = requests.insert()   # the table as domainlm/state/schema.py defines it
MAX_TEXT = 8000  # characters of prompt/answer text kept per row
PURGE_EVERY_S = 3600.0  # how often rows past the retention period are deleted
MAX_BATCH = 1000        # rows per transaction at most


class AuditUnavailable(Exception):
    """A durable audit row could not be written: the request it records is answered with a retriable 503."""


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


def _values(row: dict) -> dict:
    """One audit row with every field: timestamped, texts capped, policy as JSON."""
    row.setdefault("ts", utc_ms())
    for text_field in ("prompt", "answer"):   # PII redacted before the text reaches the disk
        if isinstance(row.get(text_field), str):
            row[text_field] = redact_text(row[text_field])[:MAX_TEXT]
    if isinstance(row.get("policy"), (dict, list)):
        row["policy"] = json.dumps(row["policy"], ensure_ascii=False)
    row["stream"] = int(bool(row.get("stream")))
    return {f: row.get(f) for f in FIELDS}


def append(db: str | Path | StateDB, **row) -> None:
    """Write one audit row now, without a running gateway (operator commands: `domainlm vertical suspend`)."""
    with open_state(db).begin() as conn:
        conn.execute(INSERT, [_values(row)])


class AuditLog:
    """Rows are queued (bounded: `max_queue`) and written in batches by one thread. A failed write (disk full, a
    locked database) is retried with backoff until it succeeds, the rows kept; while it fails, rows beyond the
    queue's bound are dropped and counted. `status()` says which, for /ready and /metrics."""

    def __init__(self, db: str | Path | StateDB, flush_interval_s: float = 0.5, max_queue: int = 100_000,
                 busy_timeout_s: float = 5.0, retention_days: float | None = None,
                 secret_file: str | Path | None = None):
        # its own engine: the writer's short lock wait must not shorten the request path's
        self.db = StateDB(db.url if isinstance(db, StateDB) else db, busy_timeout_s=busy_timeout_s)
        self.retention_days = retention_days
        # the key for hashed prompts sits beside a SQLite file; replicas on PostgreSQL share it through secret_file
        beside = self.db.path.parent if self.db.path is not None else paths.home()
        self.secret = load_secret(Path(secret_file) if secret_file else beside / "audit-hmac.key")
        self.flush_interval_s = flush_interval_s
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

    def record(self, durable: bool = False, **row) -> Future | None:
        """Queue one row. `durable`: returns a Future that resolves once the row is committed (the writer commits
        at once rather than after flush_interval_s), or fails if it could not be queued or written."""
        waiter = Future() if durable else None
        try:
            self._queue.put_nowait((_values(row), waiter))
        except queue.Full:
            self.dropped += 1
            if waiter is not None:
                waiter.set_exception(AuditUnavailable("the audit queue is full: audit writes are failing"))
        return waiter

    def record_now(self, timeout: float = 10.0, **row) -> None:
        """Write one row and wait until it is committed (from a worker thread: operator switches must survive the
        replica that made them). Raises AuditUnavailable if it cannot be written in `timeout` seconds."""
        try:
            self.record(durable=True, **row).result(timeout=timeout)
        except TimeoutError:
            raise AuditUnavailable(f"audit row not committed within {timeout:g} s ({self.last_error})") from None

    def _commit(self, batch: list) -> bool:
        """Write the batch in one transaction, retrying with backoff (0.1 s → 5 s) until it lands (a database
        that restarts or is briefly unreachable loses nothing); only a closing log gives up (False)."""
        delay = 0.1
        while True:
            try:
                with self.db.begin() as conn:
                    conn.execute(INSERT, batch)
                self.last_error = None
                return True
            except SQLAlchemyError as exc:
                self.failures += 1
                self.last_error = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
                if self._closing:
                    self.dropped += len(batch)
                    return False
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

    def _write(self, batch: list, waiters: list) -> None:
        landed = self._commit(batch) if batch else True
        for waiter in waiters:
            if landed:
                waiter.set_result(True)
            else:
                waiter.set_exception(AuditUnavailable(f"audit row not written: {self.last_error}"))

    def _writer(self) -> None:
        """Batches end flush_interval_s after their first row (or at MAX_BATCH rows, or at once when a durable row
        waits), so rows reach the database within that interval however steady the traffic."""
        while True:
            item = self._queue.get()
            batch, waiters, stop, deadline = [], [], False, None
            while True:
                if item is None:
                    stop = True
                    break
                if isinstance(item, threading.Event):
                    self._write(batch, waiters)
                    batch, waiters, deadline = [], [], None
                    item.set()
                else:
                    values, waiter = item
                    batch.append(values)
                    if waiter is not None:
                        waiters.append(waiter)
                    deadline = deadline or time.monotonic() + self.flush_interval_s
                if len(batch) >= MAX_BATCH:
                    break
                wait = 0.0 if waiters else (deadline - time.monotonic() if batch else 0.001)
                try:
                    item = self._queue.get(timeout=wait) if wait > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
            self._write(batch, waiters)
            if self.retention_days and time.monotonic() - self._purged_at >= PURGE_EVERY_S:
                self.purge()
            if stop:
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
            with self.db.begin() as conn:
                return conn.execute(text("DELETE FROM requests WHERE ts < :cutoff"), {"cutoff": cutoff}).rowcount
        except SQLAlchemyError as exc:   # retried at the next purge; the writes matter more
            self.last_error = f"retention purge: {type(exc).__name__}: {exc}"
            return 0

    def rows(self, limit: int = 100, **where) -> list[dict]:
        self.flush()
        where = {k: v for k, v in where.items() if k in FIELDS}   # column names only from FIELDS, values bound
        clauses = " AND ".join(f"{k} = :{k}" for k in where)
        sql = "SELECT * FROM requests" + (f" WHERE {clauses}" if clauses else "") + " ORDER BY id DESC LIMIT :limit"
        with self.db.begin() as conn:
            return [dict(r) for r in conn.execute(text(sql), {**where, "limit": limit}).mappings()]
