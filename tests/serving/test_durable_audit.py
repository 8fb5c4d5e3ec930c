"""The audit writer: a durable row is committed before its Future resolves (whatever flush_interval_s says), rows
of steady traffic reach the database within flush_interval_s, and a durable row that cannot be written fails its
Future instead of pretending."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest

from domainlm.serving.audit import AuditLog, AuditUnavailable


def _count(path) -> int:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT COUNT(*) FROM requests").fetchone()[0]


def test_a_durable_row_is_committed_before_its_future_resolves(tmp_path):
    path = tmp_path / "a.sqlite"
    log = AuditLog(path, flush_interval_s=30.0)
    log.record(request_id="lazy", endpoint="chat", status=200)
    start = time.monotonic()
    log.record(durable=True, request_id="kept", endpoint="chat", status=200).result(timeout=5)
    assert time.monotonic() - start < 1.0
    assert _count(path) == 2          # the lazy row rode along in the same transaction
    log.close()


def test_steady_traffic_is_committed_within_the_flush_interval(tmp_path):
    """A row every 20 ms never leaves a 0.2 s gap: batches still end 0.2 s after their first row."""
    path = tmp_path / "a.sqlite"
    log = AuditLog(path, flush_interval_s=0.2)
    stop, lag = threading.Event(), []

    def traffic():
        i = 0
        while not stop.is_set():
            log.record(request_id=f"r{i}", endpoint="chat", status=200)
            i += 1
            time.sleep(0.02)

    writer = threading.Thread(target=traffic)
    writer.start()
    time.sleep(0.3)
    for _ in range(5):
        time.sleep(0.25)
        lag.append(_count(path))
    stop.set()
    writer.join()
    assert lag[0] > 0 and lag == sorted(lag) and len(set(lag)) >= 4   # committed all along, not at the end
    log.close()


def test_a_durable_row_that_cannot_be_written_fails(tmp_path):
    path = tmp_path / "a.sqlite"
    log = AuditLog(path, flush_interval_s=0.01, max_queue=1, busy_timeout_s=0.05)
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    first = log.record(durable=True, request_id="r0", endpoint="chat", status=200)
    deadline = time.time() + 10
    while log.status()["ok"] and time.time() < deadline:     # the writer is retrying r0
        time.sleep(0.02)
    log.record(request_id="r1", endpoint="chat", status=200)  # fills the queue (bound 1)
    refused = log.record(durable=True, request_id="r2", endpoint="chat", status=200)
    with pytest.raises(AuditUnavailable, match="queue is full"):
        refused.result(timeout=1)
    assert not first.done()                                   # r0 waits for the lock; it is not given up
    blocker.execute("ROLLBACK")
    blocker.close()
    assert first.result(timeout=15) is True
    log.close()
