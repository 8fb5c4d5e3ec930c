"""Results cache (SQLite): one row per (model identity, request). Makes reruns free and killed runs resumable.

The model identity is a hash over the backend, its numerics (dtype), the base weights' sha256 and the adapter's
artifact id, so a changed adapter or base never reuses stale scores. Rows are committed after every batch.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

from domainlm.hashing import sha256_bytes

SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    key TEXT PRIMARY KEY,      -- sha256(model identity, request)
    model TEXT NOT NULL,       -- sha256 of the model identity (for inspection and pruning)
    value TEXT NOT NULL,       -- JSON result
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS results_model ON results(model);
"""


def model_key(identity: dict) -> str:
    return sha256_bytes(json.dumps(identity, sort_keys=True))


def request_key(model: str, request: dict) -> str:
    return sha256_bytes(model + "\n" + json.dumps(request, sort_keys=True, ensure_ascii=False))


class ResultCache:
    """get_many / put_many over one SQLite file; a disabled cache stores nothing and finds nothing."""

    def __init__(self, path: str | Path | None, enabled: bool = True):
        self.enabled = enabled and path is not None
        self.path = Path(path) if path else None
        self.hits = 0
        self.misses = 0
        self._db = None
        if self.enabled:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(self.path), timeout=60)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(SCHEMA)

    def get_many(self, keys: list[str]) -> dict[str, object]:
        found: dict[str, object] = {}
        if self._db is not None:
            for start in range(0, len(keys), 500):  # SQLite caps bound parameters per statement
                chunk = keys[start:start + 500]
                marks = ",".join("?" * len(chunk))
                for key, value in self._db.execute(f"SELECT key, value FROM results WHERE key IN ({marks})", chunk):
                    found[key] = json.loads(value)
        self.hits += len(found)
        self.misses += len(keys) - len(found)
        return found

    def put_many(self, model: str, items: dict[str, object]) -> None:
        if self._db is None or not items:
            return
        now = time.time()
        with self._db:
            self._db.executemany("INSERT OR REPLACE INTO results(key, model, value, created_at) VALUES (?, ?, ?, ?)",
                                 [(k, model, json.dumps(v, ensure_ascii=False), now) for k, v in items.items()])

    def count(self, model: str | None = None) -> int:
        if self._db is None:
            return 0
        if model is None:
            return self._db.execute("SELECT COUNT(*) FROM results").fetchone()[0]
        return self._db.execute("SELECT COUNT(*) FROM results WHERE model = ?", (model,)).fetchone()[0]

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
