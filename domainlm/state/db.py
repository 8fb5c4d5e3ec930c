"""One handle on the gateway's database: a SQLite file (one machine) or PostgreSQL (replicas on many machines).

Chosen by one URL: a path or `sqlite:///…` for SQLite, `postgresql://user@host:port/db` for PostgreSQL (driven by
psycopg 3). Opening a database brings its schema to the newest Alembic revision first; replicas that start together
take turns (an advisory lock on PostgreSQL), so none sees a half-made schema.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from pathlib import Path
from collections.abc import Iterator

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.pool import NullPool

from domainlm.errors import DomainlmError

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
SCHEMAS = ("gateway", "registry")   # one Alembic chain each (migrations/<schema>/)
MIGRATION_LOCK = 0x646C6D5F  # 'dlm_': the advisory lock id replicas take while migrating PostgreSQL
WRITE_LOCK = 0x646C6D57      # 'dlmW': serialises `exclusive` transactions on PostgreSQL (registry writes)


class StateError(DomainlmError):
    """The state database cannot be opened (bad URL, unreachable server, failed migration)."""


def normalise_url(where: str | Path) -> str:
    """A SQLAlchemy URL from a path or URL; PostgreSQL URLs are pinned to the psycopg 3 driver."""
    where = str(where)
    if "://" not in where:
        return f"sqlite:///{Path(where).expanduser().resolve()}"
    try:
        url = make_url(where)
    except ArgumentError:
        raise StateError(f"state url {where!r} is not a database URL (postgresql://… or sqlite:///path)") from None
    if url.get_backend_name() == "postgresql":
        return url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    if url.get_backend_name() == "sqlite":
        if not url.database:
            raise StateError("state url: an in-memory SQLite database is not shared; give a file path")
        return where
    raise StateError(f"state url {url.render_as_string()!r}: use postgresql://… or a SQLite path")


class StateDB:
    """The engine, the dialect, and transactions. `path` is the SQLite file (None on PostgreSQL). `schema` names
    the tables (and migration chain) this handle brings up to date: `gateway` or `registry`."""

    def __init__(self, where: str | Path, busy_timeout_s: float = 30.0, schema: str = "gateway"):
        if schema not in SCHEMAS:
            raise ValueError(f"schema must be one of {SCHEMAS}")
        self.schema = schema
        self.url = normalise_url(where)
        parsed = make_url(self.url)
        self.dialect = parsed.get_backend_name()
        self.path = Path(parsed.database) if self.dialect == "sqlite" else None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # a connection per use, as sqlite3 was used before: nothing holds the file open between calls (an open
            # handle loses its POSIX locks whenever anything else in the process closes the same file)
            self.engine = create_engine(self.url, connect_args={"timeout": busy_timeout_s}, poolclass=NullPool)
            event.listen(self.engine, "connect", _sqlite_pragmas)
            event.listen(self.engine, "begin", _sqlite_begin)
        else:
            # pre-ping: a replica whose database restarted reconnects instead of failing its next request
            # a statement waiting on a lock longer than busy_timeout_s fails (and is retried by its caller)
            self.engine = create_engine(self.url, pool_pre_ping=True, pool_size=5, max_overflow=10, connect_args={
                "connect_timeout": 10, "options": f"-c lock_timeout={int(busy_timeout_s * 1000)}"})
        self.describe = parsed.render_as_string(hide_password=True)
        self.migrate()

    def __repr__(self) -> str:
        return f"StateDB({self.describe})"

    @contextmanager
    def begin(self, exclusive: bool = False) -> Iterator[Connection]:
        """One transaction: committed when the block ends, rolled back if it raises. `exclusive`: one such
        transaction at a time across every process on this database (SQLite BEGIN IMMEDIATE; a PostgreSQL advisory
        lock), for read-then-write sequences such as promoting a version."""
        with self.engine.connect() as conn:
            if exclusive and self.dialect == "sqlite":
                conn.info["begin"] = "BEGIN IMMEDIATE"
            with conn.begin():
                if exclusive and self.dialect == "postgresql":
                    conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": WRITE_LOCK})
                yield conn

    @contextmanager
    def reader(self) -> Iterator[Connection]:
        """A connection for reads (no transaction held open beyond each statement on SQLite)."""
        with self.engine.connect() as conn:
            yield conn

    def migrate(self) -> None:
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS / self.schema))
        try:
            with self.engine.begin() as conn:
                if self.dialect == "postgresql":
                    conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": MIGRATION_LOCK})
                config.attributes["connection"] = conn
                command.upgrade(config, "head")
        except SQLAlchemyError as exc:
            raise StateError(f"state database {self.describe}: {type(exc).__name__}: "
                             f"{str(exc).splitlines()[0]}") from None

    def revision(self) -> str | None:
        table = "alembic_version" if self.schema == "gateway" else f"alembic_version_{self.schema}"
        with self.engine.connect() as conn:
            return conn.execute(text(f"SELECT version_num FROM {table}")).scalar()

    def dispose(self) -> None:
        self.engine.dispose()


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # WAL: readers never wait on the writer, so replicas on one machine share the file. The driver's own implicit
    # BEGIN is switched off so that `_sqlite_begin` decides how each transaction starts (SQLAlchemy's recipe).
    dbapi_connection.execute("PRAGMA journal_mode=WAL")
    dbapi_connection.isolation_level = None


def _sqlite_begin(conn) -> None:
    conn.exec_driver_sql(conn.info.pop("begin", "BEGIN"))


_OPEN: dict[tuple[str, str], StateDB] = {}
_OPEN_LOCK = threading.Lock()


def open_state(where: str | Path | StateDB, schema: str = "gateway") -> StateDB:
    """The process's one StateDB per URL and schema (stores on the same database share an engine, migrate once)."""
    if isinstance(where, StateDB):
        return where
    url = normalise_url(where)
    with _OPEN_LOCK:
        if (url, schema) not in _OPEN:
            _OPEN[url, schema] = StateDB(url, schema=schema)
        return _OPEN[url, schema]
