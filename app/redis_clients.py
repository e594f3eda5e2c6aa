"""Every Redis client passgate makes, with one reconnection policy.

A pooled connection does not notice that Redis restarted until it is used: the server's FIN
sits unread in the socket. The locked redis-py (8.x, RESP3 by default) does not discard such
a connection when the pool hands it out either (its ``ensure_connection`` skips the check
whenever maintenance notifications are on, and they are on, "auto", for RESP3), and a
connection made by a pool retries nothing by default. So the first command on each idle
connection after a restart failed, and the rate limiter answered 503 although Redis was back.

The policy, through redis-py's own mechanisms:

- ``retry``: a command that fails with a connection error is sent once more on a fresh
  connection, at once. A dead pooled connection fails before the server sees anything (the
  new server never saw the old socket), so resending is safe; a Redis that is still down
  fails the retry too, fast, and callers report the outage. Timeouts are not retried: a hung
  server would double the wait before an answer.
- ``health_check_interval``: a connection idle for longer than ``IDLE_CHECK_SECONDS`` is
  PINGed before its next command, so a dead one is found by the PING, not by a command. A busy
  connection never pays for it.
- Socket timeouts everywhere, so a half-open connection cannot hang a caller.
"""

from __future__ import annotations

from typing import Any

import redis
import redis.asyncio
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.retry import Retry as SyncRetry

IDLE_CHECK_SECONDS = 5
SOCKET_TIMEOUT_SECONDS = 5.0
RETRIES = 1


def _options(retry: AsyncRetry | SyncRetry) -> dict[str, Any]:
    return {
        "retry": retry,
        "health_check_interval": IDLE_CHECK_SECONDS,
        "socket_timeout": SOCKET_TIMEOUT_SECONDS,
        "socket_connect_timeout": SOCKET_TIMEOUT_SECONDS,
    }


def async_options() -> dict[str, Any]:
    """Connection options for ``redis.asyncio`` clients and pools."""
    return _options(AsyncRetry(NoBackoff(), RETRIES, supported_errors=(RedisConnectionError,)))


def async_client(url: str) -> redis.asyncio.Redis:
    """An asyncio client (the runtime's, the settlement waiter's, the workers' publisher)."""
    return redis.asyncio.Redis.from_url(url, **async_options())


def async_blocking_pool(
    url: str, max_connections: int, timeout: float
) -> redis.asyncio.BlockingConnectionPool:
    """An asyncio pool whose callers wait up to ``timeout`` s for a free connection."""
    return redis.asyncio.BlockingConnectionPool.from_url(
        url, max_connections=max_connections, timeout=timeout, **async_options()
    )


def sync_client(url: str) -> redis.Redis:
    """A blocking client (the Dramatiq broker and the job queue's pending flags)."""
    retry = SyncRetry(NoBackoff(), RETRIES, supported_errors=(RedisConnectionError,))
    return redis.Redis.from_url(url, **_options(retry))
