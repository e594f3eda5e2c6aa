"""When to try a failed message again, and when to give up on an endpoint.

The default schedule follows Svix: an immediate attempt, then retries after about 5 s, 5 min,
30 min, 2 h, 5 h, 10 h and 10 h (eight attempts over roughly 28 hours). Each delay gets ±20 %
jitter so a receiver that comes back after an outage isn't hit by every queued message at the
same second.

``Retry-After`` on 429/502/503/504 is honoured as a floor, never as a shortcut: the delay is
``max(jittered schedule delay, Retry-After)``, capped at ``max_retry_after`` (24 h by default).
A receiver can thus slow us down but can't make us retry faster than the schedule, nor park a
message forever.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

__all__ = [
    "DEFAULT_DELAYS",
    "DEFAULT_DISABLE_AFTER",
    "RETRY_AFTER_STATUSES",
    "RetrySchedule",
    "should_disable_endpoint",
]

DEFAULT_DELAYS: tuple[float, ...] = (5, 5 * 60, 30 * 60, 2 * 3600, 5 * 3600, 10 * 3600, 10 * 3600)
DEFAULT_DISABLE_AFTER = timedelta(days=5)
RETRY_AFTER_STATUSES = frozenset({429, 502, 503, 504})

# Jitter needs no cryptographic strength, but SystemRandom keeps the module free of a seeded
# global state that a test elsewhere could fix.
_SYSTEM_RANDOM = random.SystemRandom()


@dataclass(frozen=True, slots=True)
class RetrySchedule:
    """Delays (seconds) between attempts; ``delays[i]`` follows failed attempt ``i + 1``.

    Compress it for tests with :meth:`scaled` (``RetrySchedule().scaled(0.001)``) or give an
    explicit list (``RetrySchedule(delays=(0.05, 0.1))``).
    """

    delays: tuple[float, ...] = DEFAULT_DELAYS
    jitter: float = 0.2
    max_retry_after: float = 24 * 3600
    retry_after_statuses: frozenset[int] = RETRY_AFTER_STATUSES
    uniform: Callable[[float, float], float] = field(
        default=_SYSTEM_RANDOM.uniform, compare=False, repr=False
    )

    def __post_init__(self) -> None:
        if not 0 <= self.jitter < 1:
            raise ValueError("jitter must be in [0, 1).")
        if any(d < 0 for d in self.delays):
            raise ValueError("Retry delays must not be negative.")
        if self.max_retry_after < 0:
            raise ValueError("max_retry_after must not be negative.")

    @classmethod
    def from_delays(
        cls, delays: Sequence[float], *, jitter: float = 0.2, max_retry_after: float = 24 * 3600
    ) -> RetrySchedule:
        """A schedule from any sequence of delays (e.g. parsed from settings)."""
        return cls(
            delays=tuple(float(d) for d in delays), jitter=jitter, max_retry_after=max_retry_after
        )

    @property
    def max_attempts(self) -> int:
        """Attempts in total, the first one included."""
        return len(self.delays) + 1

    def scaled(self, factor: float) -> RetrySchedule:
        """Every delay, and the ``Retry-After`` cap, multiplied by ``factor``."""
        if factor < 0:
            raise ValueError("Scale factor must not be negative.")
        return replace(
            self,
            delays=tuple(d * factor for d in self.delays),
            max_retry_after=self.max_retry_after * factor,
        )

    def bounds(self, attempts_made: int) -> tuple[float, float] | None:
        """The jitter range of the delay after ``attempts_made`` failures, or ``None``."""
        if attempts_made < 1 or attempts_made > len(self.delays):
            return None
        base = self.delays[attempts_made - 1]
        return base * (1 - self.jitter), base * (1 + self.jitter)

    def next_delay(
        self,
        attempts_made: int,
        *,
        status_code: int | None = None,
        retry_after: float | None = None,
    ) -> float | None:
        """Seconds to wait before the next attempt, or ``None`` when the message has failed.

        ``attempts_made`` counts the attempts so far, the one that just failed included.
        ``retry_after`` only counts for the statuses in ``retry_after_statuses``.
        """
        window = self.bounds(attempts_made)
        if window is None:
            return None
        low, high = window
        delay = self.uniform(low, high) if high > low else low
        if retry_after is not None and retry_after > 0 and status_code in self.retry_after_statuses:
            delay = max(delay, min(retry_after, self.max_retry_after))
        return delay


def should_disable_endpoint(
    failing_since: datetime | None,
    now: datetime,
    threshold: timedelta = DEFAULT_DISABLE_AFTER,
) -> bool:
    """Whether an endpoint has failed continuously for at least ``threshold``.

    ``failing_since`` is the time of the first failed attempt of the current streak (reset to
    ``None`` by any success); both datetimes must be timezone-aware.
    """
    if failing_since is None:
        return False
    if failing_since.tzinfo is None or now.tzinfo is None:
        raise ValueError("Use timezone-aware datetimes.")
    return now - failing_since >= threshold
