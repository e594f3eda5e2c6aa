"""How long a batching writer waits before its next round (the lease writer, the per-call
outcome writer): a round per ``delay`` while things are queued, so a batch gathers; after failed
writes a backoff up to ``cap``; while the process closes, no gathering and backoffs short
enough for its drain."""

from __future__ import annotations

CLOSING_BACKOFF_SECONDS = 0.5


def round_pause(delay: float, failures: int, *, cap: float, closing: bool) -> float:
    backoff = min(cap, 0.5 * 2**failures) if failures else 0.0
    if closing:
        return min(backoff, CLOSING_BACKOFF_SECONDS)
    return backoff or delay
