"""The gateway's and the registry index's tables, one definition for SQLite and PostgreSQL (SQLAlchemy Core).

Text timestamps (`utc_ms`: ISO 8601 with milliseconds, UTC) sort the same on both databases. The first migration
creates these tables where they are missing, so SQLite files written before the migrations existed are adopted.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, CheckConstraint, Column, Float, Index, Integer, MetaData, Table, Text, text

metadata = MetaData()
# SQLite needs INTEGER PRIMARY KEY for its rowid alias; PostgreSQL gets a BIGINT identity
ROW_ID = BigInteger().with_variant(Integer(), "sqlite")

api_keys = Table(
    "api_keys", metadata,
    Column("id", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("key_sha256", Text, nullable=False, unique=True),
    Column("scopes", Text, nullable=False),           # JSON list
    Column("rpm", Integer),                           # NULL = the gateway's default
    Column("tpm", Integer),
    Column("created_at", Text, nullable=False),
    Column("revoked_at", Text),
)

vertical_suspensions = Table(
    "vertical_suspensions", metadata,
    Column("vertical", Text, primary_key=True),
    Column("reason", Text, nullable=False),
    Column("actor", Text, nullable=False),
    Column("suspended_at", Text, nullable=False),
)

vertical_events = Table(
    "vertical_events", metadata,
    Column("id", ROW_ID, primary_key=True, autoincrement=True),
    Column("ts", Text, nullable=False),
    Column("vertical", Text, nullable=False),
    Column("action", Text, nullable=False),           # suspend | resume
    Column("reason", Text),
    Column("actor", Text, nullable=False),
    sqlite_autoincrement=True,
)

held_answers = Table(
    "held_answers", metadata,
    Column("id", Text, primary_key=True),
    Column("created_at", Text, nullable=False),
    Column("request_id", Text, nullable=False),
    Column("key_id", Text),
    Column("vertical", Text, nullable=False),
    Column("model", Text),
    Column("rule", Text, nullable=False),
    Column("answer", Text, nullable=False),
    Column("status", Text, nullable=False, server_default="pending"),   # pending | released | rejected
    Column("decided_by", Text),
    Column("decided_at", Text),
    Column("note", Text),
    Index("held_answers_status", "status", "created_at"),
)

requests = Table(   # the audit log: one row per gateway request or operator action
    "requests", metadata,
    Column("id", ROW_ID, primary_key=True, autoincrement=True),
    Column("ts", Text, nullable=False),
    Column("request_id", Text, nullable=False),
    Column("key_id", Text),
    Column("endpoint", Text, nullable=False),
    Column("model", Text),
    Column("vertical", Text),
    Column("version", Integer),
    Column("status", Integer, nullable=False),
    Column("error", Text),
    Column("stream", Integer, nullable=False, server_default="0"),
    Column("latency_ms", Float),
    Column("prompt_tokens", Integer),
    Column("completion_tokens", Integer),
    Column("prompt", Text),
    Column("prompt_sha256", Text),
    Column("answer", Text),
    Column("policy", Text),                           # JSON: language, notes applied, refusal rule
    Index("requests_ts", "ts"),
    sqlite_autoincrement=True,
)


# --- the registry's index (its own chain: a registry root keeps index.sqlite, or names a shared database) --------
registry_metadata = MetaData()
PRODUCTION = text("stage = 'production'")

versions = Table(
    "versions", registry_metadata,
    Column("vertical", Text, primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("stage", Text, nullable=False),
    Column("artifact_id", Text, nullable=False),
    Column("created_at", Text, nullable=False),
    Column("report_path", Text),
    Column("base_model_id", Text),
    Column("base_sha256", Text),
    CheckConstraint("stage IN ('candidate', 'production', 'archived')", name="versions_stage"),
    # one production version per vertical, whatever two writers do at once
    Index("one_production", "vertical", unique=True, sqlite_where=PRODUCTION, postgresql_where=PRODUCTION),
)

production_history = Table(
    "production_history", registry_metadata,
    Column("id", ROW_ID, primary_key=True, autoincrement=True),
    Column("vertical", Text, nullable=False),
    Column("version", Integer, nullable=False),
    Column("active", Integer, nullable=False, server_default="1"),   # 0 once a rollback has popped it
    Column("ts", Text, nullable=False),
    sqlite_autoincrement=True,
)

registry_audit = Table(
    "audit", registry_metadata,
    Column("id", ROW_ID, primary_key=True, autoincrement=True),
    Column("ts", Text, nullable=False),
    Column("actor", Text, nullable=False),
    Column("event", Text, nullable=False),            # register | attach_report | promote | force | rollback
    Column("vertical", Text, nullable=False),
    Column("version", Integer),
    Column("detail", Text, nullable=False),           # JSON
    sqlite_autoincrement=True,
)
