"""The gateway's stores behave the same on SQLite and on PostgreSQL (real servers, started by the fixtures), and
two store objects on one database act as two replicas: a revocation or a suspension made through one is seen by
the other within its polling delay."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest

from domainlm.serving.audit import AuditLog, append
from domainlm.serving.auth import KeyStore, KeyStoreError
from domainlm.serving.review import ReviewError, ReviewQueue
from domainlm.serving.suspension import SuspensionError, SuspensionStore
from domainlm.state import StateDB, StateError
from domainlm.state.db import normalise_url


def test_keys_on_two_replicas(state_url):
    replica_a, replica_b = KeyStore(state_url, cache_ttl_s=60), KeyStore(StateDB(state_url), cache_ttl_s=60)
    secret, record = replica_a.create("svc", ["medical", "base"], rpm=5)
    assert replica_b.authenticate(secret).scopes == ("base", "medical")       # cached for 60 s on b
    replica_a.revoke(record.id)
    time.sleep(1.05)
    assert replica_b.authenticate(secret) is None      # the cache is not trusted past the 1 s revocation poll
    assert [k.revoked_at is not None for k in replica_b.list()] == [True]
    with pytest.raises(KeyStoreError, match="no API key"):
        replica_a.revoke("nope")


def test_suspensions_and_events(state_url):
    store, other = SuspensionStore(state_url), SuspensionStore(StateDB(state_url), max_age_s=0.2)
    store.suspend("medical", "guard alert", "key:ops")
    store.suspend("medical", "guard alert, still", "key:ops")          # the upsert keeps one row
    time.sleep(0.25)
    assert other.get("medical").reason == "guard alert, still"
    assert store.resume("medical", "key:ops").reason == "guard alert, still"
    with pytest.raises(SuspensionError, match="not suspended"):
        store.resume("medical", "key:ops")
    time.sleep(0.25)
    assert other.get("medical") is None
    assert [e["action"] for e in other.events()] == ["resume", "suspend", "suspend"]


def test_review_decisions_race_once(state_url):
    queue = ReviewQueue(state_url)
    review_id = queue.hold("req-1", "k1", "medical", "medical@1", "dosage", "call 13800138000 for the dose")
    assert "13800138000" not in queue.get(review_id).answer            # PII redacted before it is stored
    outcomes = []

    def decide(decision):
        try:
            outcomes.append(queue.decide(review_id, decision, f"rev-{decision}").status)
        except ReviewError as exc:
            outcomes.append(str(exc))

    threads = [threading.Thread(target=decide, args=(d,)) for d in ("release", "reject") * 3]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(o in ("released", "rejected") for o in outcomes) == 1, outcomes
    assert queue.list(status="pending") == [] and len(queue.list(status=None)) == 1


def test_audit_rows_from_two_writers_land_once_each(state_url):
    logs = [AuditLog(state_url, flush_interval_s=0.01, retention_days=30) for _ in range(2)]
    for i in range(200):
        logs[i % 2].record(request_id=f"r{i}", endpoint="chat", status=200, prompt=f"question {i}", latency_ms=1.5)
    old = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(time.time() - 40 * 86400))
    append(state_url, request_id="old", endpoint="admin/vertical/suspend", status=200, ts=old)
    for log in logs:
        log.flush()
    rows = logs[0].rows(limit=1000)
    assert sorted(r["request_id"] for r in rows if r["request_id"] != "old") == sorted(f"r{i}" for i in range(200))
    seven = logs[1].rows(request_id="r7")[0]
    assert seven["latency_ms"] == 1.5 and seven["prompt"] == "question 7" and seven["stream"] == 0
    assert logs[0].purge() == 1 and len(logs[1].rows(limit=1000)) == 200
    for log in logs:
        log.close()


def test_an_old_sqlite_file_is_adopted_by_the_migrations(tmp_path):
    """A gateway.sqlite written before the migrations existed (tables made by CREATE TABLE IF NOT EXISTS) keeps its
    keys: opening it stamps revision 0001 and creates only what is missing."""
    path = tmp_path / "gateway.sqlite"
    with sqlite3.connect(path) as db:
        db.executescript("""
            CREATE TABLE api_keys (id TEXT PRIMARY KEY, name TEXT NOT NULL, key_sha256 TEXT NOT NULL UNIQUE,
                scopes TEXT NOT NULL, rpm INTEGER, tpm INTEGER, created_at TEXT NOT NULL, revoked_at TEXT);
            INSERT INTO api_keys VALUES ('abcd1234', 'old', 'deadbeef', '["medical"]', NULL, NULL,
                '2026-11-01T00:00:00Z', NULL);""")
    store = KeyStore(path)
    assert [k.name for k in store.list()] == ["old"]
    assert store.db.revision() == "0001"
    with sqlite3.connect(path) as db:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"requests", "held_answers", "vertical_suspensions", "vertical_events", "alembic_version"} <= tables


def test_replicas_starting_together_migrate_postgres_once(postgres_url):
    """Six replicas opening a fresh PostgreSQL database at once: the advisory lock lets one migrate, the others
    find the schema made (no duplicate-table error, one alembic revision)."""
    errors, opened = [], []

    def start():
        try:
            opened.append(StateDB(postgres_url))
        except Exception as exc:   # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and {db.revision() for db in opened} == {"0001"}
    for db in opened:
        db.dispose()


def test_bad_state_urls_say_what_is_wrong(tmp_path):
    with pytest.raises(StateError, match="use postgresql"):
        normalise_url("mysql://x/y")
    with pytest.raises(StateError, match="in-memory"):
        normalise_url("sqlite://")
    assert normalise_url("postgresql://u@h:5/d").startswith("postgresql+psycopg://")
    with pytest.raises(StateError, match="state database postgresql"):   # nothing listens there
        StateDB("postgresql://nobody@127.0.0.1:1/none")
