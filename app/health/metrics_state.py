"""States read when scraped: payments by status, chain watchers, backlogs, queue depth.

Counted in a process these would restart from zero with it and differ between processes;
read from the database and the broker they are the same from whichever API process answers.
One scrape costs a handful of indexed queries and one Redis pipeline, each bounded by
``TIMEOUT``, and their result is reused for ``PASSGATE_METRICS_CACHE_SECONDS``. A source that
fails or is too slow is reported as ``passgate_state_up{source=...} 0`` and its metrics are
left out, rather than shown stale.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import dramatiq
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from sqlalchemy.ext.asyncio import async_sessionmaker

from app.attention import service as attention_service
from app.db.types import utcnow
from app.db.uow import UnitOfWork
from app.health import repository
from app.settings import Settings
from app.transfers import service as transfers
from app.webhooks.tasks import QUEUE as WEBHOOK_QUEUE
from app.webhooks.tasks import SWEEP_QUEUE as WEBHOOK_SWEEP_QUEUE

log = logging.getLogger("passgate.metrics")

TIMEOUT = 2.0
# Every Dramatiq queue an actor consumes (tests/metrics checks this against the actors).
QUEUES = ("chain", "settlement", WEBHOOK_QUEUE, WEBHOOK_SWEEP_QUEUE, "gateway", "maintenance")

BrokerSource = Callable[[], "dramatiq.Broker | None"]


@dataclass
class _Snapshot:
    families: list[Metric] = field(default_factory=list)
    up: dict[str, bool] = field(default_factory=dict)


def _age(now: datetime, since: datetime | None) -> float:
    return max((now - since).total_seconds(), 0.0) if since is not None else 0.0


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


class StateReader:
    """Reads the states of one deployment for ``/metrics`` (one per API process)."""

    def __init__(
        self, settings: Settings, sessions: async_sessionmaker[UnitOfWork], redis: Any,
        broker: BrokerSource,
    ) -> None:
        self._settings = settings
        self._sessions = sessions
        self._redis = redis
        self._broker = broker
        self._lock = asyncio.Lock()
        self._cached: tuple[float, list[Metric]] | None = None

    async def families(self) -> list[Metric]:
        """The state metrics, read at most once per cache period (concurrent scrapes share)."""
        ttl = self._settings.metrics_cache_seconds
        async with self._lock:
            if self._cached is not None and time.monotonic() - self._cached[0] < ttl:
                return self._cached[1]
            snapshot = _Snapshot()
            await asyncio.gather(self._database(snapshot), self._queues(snapshot))
            up = GaugeMetricFamily("passgate_state_up", "Whether the source of the state "
                                   "metrics answered this scrape in time.", labels=["source"])
            for source, ok in sorted(snapshot.up.items()):
                up.add_metric([source], 1.0 if ok else 0.0)
            families = [*snapshot.families, up]
            self._cached = (time.monotonic(), families)
            return families

    # -- database ------------------------------------------------------------------------

    async def _database(self, snapshot: _Snapshot) -> None:
        try:
            async with self._sessions() as session:
                families = await asyncio.wait_for(self._read_database(session), TIMEOUT)
        except Exception as exc:  # down or slow: say so, show nothing stale
            log.warning("metrics: reading the database failed: %s", type(exc).__name__)
            snapshot.up["database"] = False
            return
        snapshot.families.extend(families)
        snapshot.up["database"] = True

    async def _read_database(self, session: UnitOfWork) -> list[Metric]:
        now = utcnow()
        families: list[Metric] = []
        payments = GaugeMetricFamily("passgate_payments", "Payments by status, scheme and "
                                     "network.", labels=["status", "scheme", "network"])
        for status, scheme, network, count in await repository.payments_by_status(session):
            payments.add_metric([status, scheme, network], float(count))
        families.append(payments)
        oldest = await repository.oldest_unsettled_at(session)
        families.append(_gauge("passgate_payment_oldest_unsettled_age_seconds",
                               "Age of the oldest payment still pending or submitted (0: none).",
                               _age(now, oldest)))
        count, oldest = await repository.pending_messages(session)
        families.append(_gauge("passgate_webhook_messages_pending",
                               "Webhook messages not yet delivered nor given up.", count))
        families.append(_gauge("passgate_webhook_oldest_pending_age_seconds",
                               "Age of the oldest undelivered webhook message (0: none).",
                               _age(now, oldest)))
        families.append(_gauge("passgate_events_undispatched",
                               "Events not yet fanned out to webhook endpoints.",
                               await repository.undispatched_events(session)))
        count, oldest = await repository.open_settlements(session)
        families.append(_gauge("passgate_settlements_open",
                               "Settlement submissions the signer has not finished.", count))
        families.append(_gauge("passgate_settlement_oldest_open_age_seconds",
                               "Age of the oldest unfinished settlement submission (0: none).",
                               _age(now, oldest)))
        count, held, first_expiry = await repository.open_leases(session)
        families.append(_gauge("passgate_gateway_leases_open",
                               "Gateway credit leases open in any API process.", count))
        families.append(_gauge("passgate_gateway_lease_held_micros",
                               "USDC micros held in open credit leases (the sum of the agents' "
                               "heldMicros): used or not, they settle when the lease closes.",
                               held))
        families.append(_gauge("passgate_gateway_lease_overdue_seconds",
                               "How long the open lease that expired first has been past its "
                               "expiry (0: none). Beyond PASSGATE_GATEWAY_LEASE_GRACE_SECONDS "
                               "plus a minute the sweeper is not running.",
                               _age(now, first_expiry)))
        attention = GaugeMetricFamily(
            "passgate_attention_items", "Work that failed for a reason a retry cannot fix, by "
            "kind and status (open: parked, waiting for an operator).", labels=["kind", "status"])
        for (kind, status), number in (await attention_service.counts(session)).items():
            attention.add_metric([kind, status], float(number))
        families.append(attention)
        families.extend(await self._watchers(session, now))
        return families

    async def _watchers(self, session: UnitOfWork, now: datetime) -> Iterable[Metric]:
        networks = list(self._settings.networks())
        states = await transfers.watcher_states(session, networks)
        labels = ["network"]
        head = GaugeMetricFamily("passgate_chain_head_block", "Latest block the watcher saw.",
                                 labels=labels)
        cursor = GaugeMetricFamily("passgate_chain_cursor_block",
                                   "Highest block whose logs are stored.", labels=labels)
        lag = GaugeMetricFamily("passgate_chain_lag_blocks",
                                "Blocks between the head and the cursor.", labels=labels)
        failures = GaugeMetricFamily("passgate_chain_watcher_failures",
                                     "Consecutive failed watcher runs.", labels=labels)
        since = GaugeMetricFamily("passgate_chain_watcher_last_success_age_seconds",
                                  "Seconds since the watcher's last successful run.",
                                  labels=labels)
        reorgs = CounterMetricFamily("passgate_chain_reorgs", "Reorgs the watcher undid.",
                                     labels=labels)
        for network in networks:
            state = states.get(network)
            if state is None:
                continue  # never ran: nothing to show yet
            failures.add_metric([network], state.consecutive_failures)
            reorgs.add_metric([network], state.reorgs)
            if state.head is not None:
                head.add_metric([network], state.head)
            if state.cursor is not None:
                cursor.add_metric([network], state.cursor)
            if state.head is not None and state.cursor is not None:
                lag.add_metric([network], max(state.head - state.cursor, 0))
            if state.last_success_at is not None:
                since.add_metric([network], _age(now, state.last_success_at))
        return [head, cursor, lag, failures, since, reorgs]

    # -- broker --------------------------------------------------------------------------

    async def _queues(self, snapshot: _Snapshot) -> None:
        try:
            if self._redis is not None:
                sizes = await asyncio.wait_for(self._redis_sizes(), TIMEOUT)
            else:
                broker = self._broker()
                if broker is None:
                    return  # embedded, no worker in this process: no queue to measure
                sizes = _stub_sizes(broker)
        except Exception as exc:
            log.warning("metrics: reading the broker failed: %s", type(exc).__name__)
            snapshot.up["broker"] = False
            return
        labels = ["queue"]
        depth = GaugeMetricFamily("passgate_queue_depth",
                                  "Jobs waiting to be taken by a worker.", labels=labels)
        delayed = GaugeMetricFamily("passgate_queue_delayed", "Jobs scheduled for later.",
                                    labels=labels)
        dead = GaugeMetricFamily("passgate_queue_dead_letters",
                                 "Jobs that ran out of retries (kept by the broker a while).",
                                 labels=labels)
        for queue, (waiting, later, failed) in zip(QUEUES, sizes, strict=True):
            depth.add_metric([queue], waiting)
            delayed.add_metric([queue], later)
            dead.add_metric([queue], failed)
        snapshot.families.extend([depth, delayed, dead])
        snapshot.up["broker"] = True

    async def _redis_sizes(self) -> list[tuple[int, int, int]]:
        """Dramatiq's Redis layout: ``<ns>:<q>`` lists the waiting ids, ``<ns>:<q>.DQ.msgs``
        holds the delayed messages and ``<ns>:<q>.XQ`` the dead-lettered ones."""
        prefix = self._settings.redis_prefix
        pipe = self._redis.pipeline(transaction=False)
        for queue in QUEUES:
            pipe.llen(f"{prefix}:{queue}")
            pipe.hlen(f"{prefix}:{queue}.DQ.msgs")
            pipe.zcard(f"{prefix}:{queue}.XQ")
        values = [int(v) for v in await pipe.execute()]
        return [(values[i], values[i + 1], values[i + 2]) for i in range(0, len(values), 3)]


def _stub_sizes(broker: dramatiq.Broker) -> list[tuple[int, int, int]]:
    """The in-process broker of the embedded mode."""
    queues = getattr(broker, "queues", {})
    dead = getattr(broker, "dead_letters_by_queue", {})

    def size(name: str) -> int:
        found = queues.get(name)
        return int(found.qsize()) if found is not None else 0

    return [(size(q), size(f"{q}.DQ"), len(dead.get(q, ()))) for q in QUEUES]
