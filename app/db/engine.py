"""Database engines: async for the API and actors, sync for Alembic and CLI tools."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

from app.db.checkpoint import WRITER_PAGES, Checkpointer
from app.db.uow import EventSink, KeyChangeSink, UnitOfWork
from app.jobs import JobQueue
from app.settings import Settings

# A pooled connection is checked twice before a request gets it. Always, for free: asyncpg
# marks its connection closed as soon as the event loop reads the server's goodbye (a restart,
# pg_terminate_backend, an idle-session timeout), so a connection the server ended is swapped
# for a fresh one without a round trip. And, idle longer than this, pinged: a connection whose
# server vanished without a word (a dropped network path, a failover) is caught before a
# request uses it. A busy pool reuses its connections within milliseconds, so the hot path
# pays no extra round trip. (``pool_pre_ping`` would ping on every checkout: see README.)
PING_AFTER_IDLE_SECONDS = 2.0
_RETURNED_AT = "passgate_returned_at"


# A new SQLite file gets 16 KiB pages (SQLite's default is 4 KiB): a chain backfill writes
# tens of thousands of rows into seven B-trees per range, and with four times fewer pages to
# split, log to the WAL and checksum, storing and committing such a range took about half the
# time. Small transactions write a few more bytes each, which on SQLite's in-process,
# unsynced-per-commit path is noise. It only applies to a file with no tables yet.
SQLITE_PAGE_SIZE = 16_384
# Page cache per connection, in KiB (SQLite's default is 2 MiB): a large range's index pages
# stay in memory until the commit instead of being spilled to the WAL in between.
SQLITE_CACHE_KIB = 32_768


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers run beside the single writer; busy_timeout queues writers instead of
    # failing them with "database is locked"; foreign keys are off by default in SQLite.
    # synchronous=NORMAL in WAL mode syncs at checkpoints instead of every commit: a crash of
    # any process loses nothing and nothing can corrupt; only an OS crash or power cut may
    # roll back the last commits (production runs on PostgreSQL).
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA page_size={SQLITE_PAGE_SIZE}")  # before WAL fixes it
    cursor.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    # Checkpoints run in the engine's Checkpointer thread; a writer runs one itself only as a
    # backstop (see app.db.checkpoint).
    cursor.execute(f"PRAGMA wal_autocheckpoint={WRITER_PAGES}")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _returned(_dbapi_connection: Any, record: Any) -> None:
    record.info[_RETURNED_AT] = time.monotonic()


def _check_on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
    if _closed_by_server(dbapi_connection):
        # The pool discards this connection and retries the checkout with a fresh one.
        raise DisconnectionError("the server closed this pooled connection")
    returned_at = record.info.get(_RETURNED_AT)
    if returned_at is not None and time.monotonic() - returned_at >= PING_AFTER_IDLE_SECONDS:
        _ping(dbapi_connection)


def _closed_by_server(dbapi_connection: Any) -> bool:
    # SQLAlchemy's asyncpg adapter keeps the asyncpg connection here; its own disconnect
    # detection asks the same question.
    connection = getattr(dbapi_connection, "_connection", None)
    return connection is not None and bool(connection.is_closed())


def _ping(dbapi_connection: Any) -> None:
    try:
        cursor = dbapi_connection.cursor()
        cursor.execute("SELECT 1")
        cursor.close()
    except Exception as exc:
        # The pool discards this connection and retries the checkout with a fresh one.
        raise DisconnectionError("pooled connection failed its ping") from exc


def create_engine(settings: Settings) -> AsyncEngine:
    # Statement parameters hold signatures, sealed secrets and key hashes: SQLAlchemy must not
    # put them into its error messages (which end up in tracebacks and logs) or echo them.
    kwargs: dict[str, Any] = {"echo": settings.database_echo, "hide_parameters": True}
    if settings.is_sqlite:
        kwargs["connect_args"] = {"timeout": 30}
    else:
        kwargs.update(pool_size=settings.database_pool_size,
                      max_overflow=settings.database_max_overflow)
    engine = create_async_engine(settings.database_url, **kwargs)
    if settings.is_sqlite:
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        path = engine.url.database
        if path and path != ":memory:" and not path.startswith("file:"):
            checkpointer = Checkpointer(path)
            event.listen(engine.sync_engine, "commit", lambda _conn: checkpointer.nudge())
            event.listen(engine.sync_engine, "engine_disposed",
                         lambda _engine: checkpointer.stop())
    else:
        event.listen(engine.sync_engine.pool, "checkin", _returned)
        event.listen(engine.sync_engine.pool, "checkout", _check_on_checkout)
    return engine


def session_factory(
    engine: AsyncEngine, *, jobs: JobQueue | None = None, events: EventSink | None = None,
    key_changes: KeyChangeSink | None = None,
) -> async_sessionmaker[UnitOfWork]:
    """Sessions that are units of work: what they queue goes to ``jobs``, ``events`` and
    ``key_changes`` once they commit (``app.db.uow``)."""
    return async_sessionmaker(engine, class_=UnitOfWork, expire_on_commit=False, jobs=jobs,
                              events=events, key_changes=key_changes)
