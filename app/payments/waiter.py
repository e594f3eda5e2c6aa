"""Wake requests waiting for a payment's settlement, across processes, without polling hard.

With Redis, a settlement publishes the payment id on a channel and one subscriber task per
API process wakes the local waiters. In the embedded mode (one process, the worker on its own
thread) a process-wide registry does the same with ``call_soon_threadsafe``. Either way the
waiter re-reads the database after every wake-up and at a slow safety interval, so a lost
notification costs latency, never correctness.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import defaultdict
from typing import Any

log = logging.getLogger("passgate.payments")

SAFETY_RECHECK_SECONDS = 2.0
# The listener tries again at most this long after losing Redis: a settlement published
# once Redis is back should find it subscribed, and a refused connection costs nothing.
LISTENER_RETRY_MAX_SECONDS = 1.0


class _LocalHub:
    """Waiters of this process: payment id -> futures, each bound to its own loop."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: dict[str, set[asyncio.Future[None]]] = defaultdict(set)

    def register(self, payment_id: str) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        with self._lock:
            self._waiters[payment_id].add(future)
        return future

    def unregister(self, payment_id: str, future: asyncio.Future[None]) -> None:
        with self._lock:
            waiters = self._waiters.get(payment_id)
            if waiters is not None:
                waiters.discard(future)
                if not waiters:
                    del self._waiters[payment_id]

    def wake(self, payment_id: str) -> None:
        """Thread-safe: may be called from a worker thread or another loop."""
        with self._lock:
            waiters = list(self._waiters.get(payment_id, ()))
        for future in waiters:
            loop = future.get_loop()
            if not loop.is_closed():
                loop.call_soon_threadsafe(_resolve, future)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


HUB = _LocalHub()


def channel(prefix: str) -> str:
    return f"{prefix}:payments:settled"


class Watch:
    """Interest in one payment's settlement; use as a context manager."""

    def __init__(self, payment_id: str) -> None:
        self.payment_id = payment_id
        self._future = HUB.register(payment_id)

    async def wait(self, within: float) -> None:
        """Return on a wake-up, or after ``within`` seconds (at most the safety re-check)."""
        try:
            await asyncio.wait_for(
                asyncio.shield(self._future), timeout=max(0.0, min(within, SAFETY_RECHECK_SECONDS))
            )
        except TimeoutError:
            return
        # Woken: re-arm for the next change (submitted -> settled).
        HUB.unregister(self.payment_id, self._future)
        self._future = HUB.register(self.payment_id)

    def __enter__(self) -> Watch:
        return self

    def __exit__(self, *_: object) -> None:
        HUB.unregister(self.payment_id, self._future)


class SettlementWaiter:
    """One per API process: ``wait_for(payment_id, timeout)`` returns on a wake-up or timeout."""

    def __init__(self, redis: Any | None, prefix: str) -> None:
        self._redis = redis
        self._channel = channel(prefix)
        self._listener: asyncio.Task[None] | None = None

    def _ensure_listener(self) -> None:
        if self._redis is None or (self._listener is not None and not self._listener.done()):
            return
        self._listener = asyncio.get_running_loop().create_task(self._listen())

    async def _listen(self) -> None:
        redis = self._redis
        assert redis is not None
        backoff = 0.25
        while True:
            try:
                async with redis.pubsub() as pubsub:
                    await pubsub.subscribe(self._channel)
                    backoff = 0.25
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            data = message.get("data")
                            HUB.wake(data.decode() if isinstance(data, bytes) else str(data))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a Redis outage: waiters fall back to the slow re-check
                log.warning("settlement listener lost Redis (%s); retrying", type(exc).__name__)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, LISTENER_RETRY_MAX_SECONDS)

    def watch(self, payment_id: str) -> Watch:
        """Register interest first, then read the database, then ``wait``: no wake-up is lost
        between the read and the wait."""
        self._ensure_listener()
        return Watch(payment_id)

    async def close(self) -> None:
        """Stop the listener without ever hanging shutdown (a pub/sub connection can stall)."""
        task, self._listener = self._listener, None
        if task is None or task.done():
            return
        loop = task.get_loop()
        if loop is not asyncio.get_running_loop():
            loop.call_soon_threadsafe(task.cancel)
            return
        task.cancel()
        await asyncio.wait({task}, timeout=2.0)


async def announce_settled(redis: Any | None, prefix: str, payment_id: str) -> None:
    """Wake every process's waiters for ``payment_id`` (called after the commit)."""
    HUB.wake(payment_id)
    if redis is not None:
        try:
            await redis.publish(channel(prefix), payment_id)
        except Exception as exc:  # waiters re-check the database on their own
            log.warning("could not publish settlement of %s: %s", payment_id, type(exc).__name__)
