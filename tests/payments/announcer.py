"""A stand-in worker process for the settlement-waiter tests: it announces every payment id
read from stdin the way a worker's settlement does (``announce_settled`` on the worker's
long-lived Redis client), and answers "sent".

Run as ``python -m tests.payments.announcer`` with ``PASSGATE_REDIS_URL`` and
``PASSGATE_REDIS_PREFIX`` set. Its own process, so the API side's in-process hub cannot wake
anyone: only Redis carries the announcement.
"""

from __future__ import annotations

import asyncio
import sys

from app.payments.waiter import announce_settled
from workers import actor_context
from workers.notify import redis_of


async def main() -> None:
    ctx = actor_context.current()
    try:
        while line := await asyncio.to_thread(sys.stdin.readline):
            await announce_settled(redis_of(ctx), ctx.settings.redis_prefix, line.strip())
            print("sent", flush=True)
    finally:
        await actor_context.close_current()


if __name__ == "__main__":
    asyncio.run(main())
