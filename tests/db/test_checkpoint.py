"""SQLite: commits leave WAL checkpoints to a background thread, which copies them into the
database file soon after, and stops with its engine."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from app.db import checkpoint
from app.db.checkpoint import WRITER_PAGES, Checkpointer
from app.db.engine import create_engine
from app.settings import Settings

THREAD = "passgate-sqlite-checkpoint"
MIB = 1024 * 1024


def _threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == THREAD]


async def _until(condition: object, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return True
        await asyncio.sleep(0.05)
    return bool(callable(condition) and condition())


async def test_a_commit_is_copied_into_the_database_file_in_the_background(
    tmp_path: Path,
) -> None:
    path = tmp_path / "odd name" / "wal.db"  # a space: quoted in the checkpointer's URI
    path.parent.mkdir()
    engine = create_engine(Settings(database_url=f"sqlite+aiosqlite:///{path}"))
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE blobs (data BLOB)"))
            # ~6 MiB: below SQLite's default automatic checkpoint (1,000 pages = 16 MiB with
            # our page size), so before this change nothing copied it until the last
            # connection closed.
            await conn.execute(text(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 400) "
                "INSERT INTO blobs SELECT randomblob(16000) FROM n"
            ))
            pages = (await conn.execute(text("PRAGMA wal_autocheckpoint"))).scalar_one()
        assert pages == WRITER_PAGES
        # The commit returned with the pages in the WAL; the thread copies them within its
        # interval, with the engine's connections still open.
        assert await _until(lambda: path.stat().st_size > 5 * MIB, 10), path.stat().st_size
        async with engine.connect() as conn:
            count = (await conn.execute(text("SELECT count(*) FROM blobs"))).scalar_one()
        assert count == 400
    finally:
        await engine.dispose()
    # Disposing of the engine stops its thread.
    assert await _until(lambda: not _threads(), 10)


async def test_a_checkpointer_never_recreates_a_removed_database(tmp_path: Path) -> None:
    path = tmp_path / "gone.db"
    checkpointer = Checkpointer(str(path), interval=0.05)
    checkpointer.nudge()
    await asyncio.sleep(0.3)
    checkpointer.stop()
    assert not path.exists()
    assert checkpointer.checkpoints == 0
    assert not _threads()


async def test_an_idle_thread_exits_and_the_next_commit_starts_another(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(checkpoint, "IDLE_EXIT_SECONDS", 0.2)
    path = tmp_path / "idle.db"
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE t (x)")
    checkpointer = Checkpointer(str(path), interval=0.05)
    try:
        checkpointer.nudge()
        assert await _until(lambda: checkpointer.checkpoints == 1, 5)
        assert await _until(lambda: not _threads(), 5)  # idle: gone
        checkpointer.nudge()
        assert await _until(lambda: checkpointer.checkpoints == 2, 5)
    finally:
        checkpointer.stop()
    assert not _threads()
