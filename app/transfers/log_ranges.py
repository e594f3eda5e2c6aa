"""Fetching a watcher's logs range by range: how wide the next range is, and the next range's
logs fetched while the current one is stored."""

from __future__ import annotations

import asyncio
from typing import Any

from chain.client import ChainClient
from chain.records import BlockHeader, TransferLog

# Good ranges in a row, after the provider refused a range, before the range may grow again.
GROW_AFTER = 3


_Fetched = tuple[list[TransferLog], BlockHeader | None]


class Prefetch:
    """At most one range's logs in flight ahead of the range being stored, each with the header
    of the range's last block from the same node (``ChainClient.scan_transfer_logs``).

    Only a result for exactly the range asked for next is used; anything else (the range
    shrank, the run stopped) is cancelled, so a prefetch can never make the scan skip or
    repeat blocks. Its errors surface when its range is taken, as if fetched then.
    """

    def __init__(self, client: ChainClient, addresses: list[str]) -> None:
        self.client = client
        self.addresses = addresses
        self._range: tuple[int, int] | None = None
        self._task: asyncio.Task[_Fetched] | None = None

    def start(self, low: int, high: int) -> None:
        self.cancel()
        self._range = (low, high)
        self._task = asyncio.create_task(self._fetch(low, high))

    async def take(self, low: int, high: int) -> _Fetched:
        task = self._task
        if task is not None and self._range == (low, high):
            self._task = self._range = None
            return await task
        self.cancel()
        return await self._fetch(low, high)

    def cancel(self) -> None:
        task, self._task, self._range = self._task, None, None
        if task is not None:
            task.cancel()
            # Nobody awaits it any more: retrieve its outcome so asyncio does not log it.
            task.add_done_callback(_ignore_outcome)

    async def _fetch(self, low: int, high: int) -> _Fetched:
        return await self.client.scan_transfer_logs(low, high, to_addresses=self.addresses)


def _ignore_outcome(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()


def next_range(
    size: int, good: int, *, spanned: int, found: int, target: int, maximum: int
) -> tuple[int, int]:
    """The range size and good-range count after a range of ``spanned`` blocks (at most
    ``size``; fewer when it reached the head) returned ``found`` logs."""
    good = min(good + 1, GROW_AFTER)
    if found > target:
        # Dense: aim the next range at the target (proportionally; the provider did not
        # complain, so this sets no caution).
        return max(1, spanned * target // found), good
    if spanned >= size and found <= target // 2 and good >= GROW_AFTER:
        return min(maximum, size * 2), good
    return size, good
