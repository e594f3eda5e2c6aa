"""SQLite WAL checkpoints in a background thread, off the committing writer's path.

In WAL mode a commit only appends pages to the ``-wal`` file; a *checkpoint* copies them into
the database file. By default SQLite runs it inside whichever commit takes the WAL past 1,000
pages, so that one commit (a request, or a chain backfill's range) stalls for the whole copy:
about 0.1 s per 16 MB here, a fifth of a 20,000-transfer backfill's time. SQLite's own advice
for applications that care is to checkpoint from another thread, which is what this does.

Each SQLite engine gets one :class:`Checkpointer`. A commit nudges it (setting an event costs
nothing); its thread then runs a ``PASSIVE`` checkpoint on a connection of its own, at most
once per :data:`INTERVAL_SECONDS`, so bursts of small commits share one copy and one sync. A
passive checkpoint never blocks readers or writers, and the sqlite3 module releases the GIL
while it runs. Writers keep an automatic checkpoint as a backstop, at :data:`WRITER_PAGES`,
far above what one interval of writing reaches here: were the thread ever to fall behind, the
WAL still cannot grow without bound.

Nothing is at stake on a crash: committed pages are durable in the WAL, and whichever
connection opens the database next picks up from there. The thread stops when its engine is
disposed, or after :data:`IDLE_EXIT_SECONDS` without a commit (a later commit starts it again).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from urllib.parse import quote

log = logging.getLogger("passgate.db.checkpoint")

# Fewest seconds between two background checkpoints.
INTERVAL_SECONDS = 1.0
# How long after a commit starts its checkpoint may run (the commit itself takes milliseconds).
SETTLE_SECONDS = 0.05
# A thread with nothing to do for this long exits (engines in tests are not always disposed).
IDLE_EXIT_SECONDS = 30.0
# Writers' own automatic checkpoint, in pages (128 MiB of 16 KiB pages): the backstop.
WRITER_PAGES = 8_192


class Checkpointer:
    """Background ``PASSIVE`` checkpoints of one SQLite database file."""

    def __init__(self, path: str, *, interval: float = INTERVAL_SECONDS) -> None:
        self.path = path
        self.interval = interval
        self.checkpoints = 0  # completed runs, for tests and diagnostics
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._last = 0.0
        self._nudged_at = 0.0

    def nudge(self) -> None:
        """A transaction is committing: checkpoint what it wrote within the interval."""
        self._nudged_at = time.monotonic()
        self._wake.set()
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._stopping = False
                    self._thread = threading.Thread(
                        target=self._run, name="passgate-sqlite-checkpoint", daemon=True
                    )
                    self._thread.start()

    def stop(self) -> None:
        """Stop the thread (after a checkpoint in progress); a later nudge starts another."""
        with self._lock:
            self._stopping = True
            thread = self._thread
        self._wake.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=10)

    def _run(self) -> None:
        try:
            while True:
                if not self._wake.wait(IDLE_EXIT_SECONDS):
                    with self._lock:
                        if not self._wake.is_set():
                            self._thread = None  # under the lock: a nudge now starts another
                            return
                if self._stopping:
                    return
                # The nudge comes as the commit starts: let it finish (SETTLE_SECONDS), and let
                # the commits of the interval share one checkpoint.
                due = max(self._last + self.interval, self._nudged_at + SETTLE_SECONDS)
                pause = due - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
                if self._stopping:
                    return
                self._wake.clear()
                self._checkpoint()
                self._last = time.monotonic()
        finally:
            with self._lock:
                if self._thread is threading.current_thread():
                    self._thread = None

    def _checkpoint(self) -> None:
        try:
            # mode=rw: a database file that is gone (a test's temporary one) is an error here,
            # never created anew. Quoted: a path may hold "?".
            uri = f"file:{quote(self.path)}?mode=rw"
            connection = sqlite3.connect(uri, uri=True, timeout=0)
            try:
                connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            finally:
                connection.close()
            self.checkpoints += 1
        except sqlite3.Error as exc:
            # Busy (another process checkpoints) or gone: a later commit tries again, and the
            # writers' own backstop still bounds the WAL.
            log.debug("background checkpoint skipped: %s", exc)
