"""From what the database and the chain say to a verdict: each part's status, and why the
whole is degraded. Pure functions of their inputs and a :class:`Clock`.

A periodic job is late once it has not succeeded for ``max(PASSGATE_HEALTH_STALE_AFTER_SECONDS,
3 x its interval)``. An API process that started less than that long ago reports what it has
not seen yet as ``starting`` rather than late: after a restart the background gets the same
time to show up.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from app.db.models.health import JobHeartbeat
from app.db.types import rfc3339
from app.health.schemas import (
    AttentionSummary,
    DependencyState,
    JobView,
    SchedulerView,
    SignerNetworkView,
    SignerView,
)
from app.transfers.schemas import WatcherView

# The jobs health expects whatever the heartbeats say (a test checks the workers schedule
# them): the signer's sweeper, webhook delivery's sweeper, pass expiry.
SIGNER_JOB = "settlement_sweep"
WEBHOOK_JOB = "webhook_sweep"
EXPIRY_JOB = "expire_keys"
EXPECTED_JOBS = (SIGNER_JOB, WEBHOOK_JOB, EXPIRY_JOB)

LATE = "late"
STARTING = "starting"


@dataclass(frozen=True, slots=True)
class Clock:
    now: datetime
    # How long this API process has been up, and the health threshold.
    uptime_seconds: float
    stale_after_seconds: float

    @property
    def in_grace(self) -> bool:
        return self.uptime_seconds <= self.stale_after_seconds

    def age(self, at: datetime | None) -> float | None:
        return None if at is None else round(max(0.0, (self.now - at).total_seconds()), 3)


def _unseen(clock: Clock) -> str:
    return STARTING if clock.in_grace else LATE


def job_view(name: str, beat: JobHeartbeat | None, clock: Clock) -> JobView:
    every = beat.every_seconds if beat is not None else None
    limit = max(clock.stale_after_seconds, 3 * every) if every else clock.stale_after_seconds
    success = beat.last_success_at if beat is not None else None
    age = clock.age(success)
    if age is not None and age <= limit:
        failure = beat.last_failure_at if beat is not None else None
        status = "failing" if failure is not None and success is not None and failure > success \
            else "ok"
    else:
        status = _unseen(clock)
    delay = beat.last_queue_delay_ms if beat is not None else None
    return JobView(
        name=name, queue=beat.queue if beat else None, status=status, every_seconds=every,
        stale_after_seconds=limit,
        last_sent_at=rfc3339(beat.last_sent_at) if beat else None,
        last_success_at=rfc3339(success), age_seconds=age,
        queue_delay_seconds=None if delay is None else delay / 1000,
        last_failure_at=rfc3339(beat.last_failure_at) if beat else None,
        last_error=beat.last_error if beat else None,
    )


def job_views(beats: Sequence[JobHeartbeat], clock: Clock) -> list[JobView]:
    by_name = {beat.job: beat for beat in beats}
    return [job_view(name, by_name.get(name), clock)
            for name in sorted(set(by_name) | set(EXPECTED_JOBS))]


def scheduler_view(beats: Sequence[JobHeartbeat], clock: Clock) -> SchedulerView:
    sent = max((beat.last_sent_at for beat in beats if beat.last_sent_at), default=None)
    age = clock.age(sent)
    status = "ok" if age is not None and age <= clock.stale_after_seconds else _unseen(clock)
    return SchedulerView(status=status, last_sent_at=rfc3339(sent), age_seconds=age)


def signer_status(
    job: JobView | None, *, networks_enabled: bool, configured: bool,
    gas: Sequence[SignerNetworkView],
) -> str:
    if not networks_enabled:
        return "unused"
    if not configured:
        return "not_configured"
    if any(network.funded is False for network in gas):
        return "no_gas"
    return job.status if job is not None else "unknown"


def _job_reason(job: JobView) -> str:
    if job.last_success_at is None:
        return f"{job.name} has never run"
    error = f"; last error {job.last_error}" if job.last_error else ""
    return (f"{job.name} has not succeeded for {job.age_seconds:.0f} s (threshold "
            f"{job.stale_after_seconds:g} s){error}")


def reasons(
    *, database: DependencyState, broker: DependencyState, chains: Sequence[WatcherView],
    jobs: Sequence[JobView], scheduler: SchedulerView | None, signer: SignerView, clock: Clock,
    attention: AttentionSummary | None = None,
) -> list[str]:
    """Why the whole is degraded, one sentence each (empty: healthy)."""
    found: list[str] = []
    for name, state in (("database", database), ("broker", broker)):
        if state.status != "ok":
            found.append(f"{name} is {state.status} ({state.detail or 'no detail'})")
    for chain in chains:
        if chain.status == "down":
            why = chain.last_error or "not running"
            found.append(f"chain watcher {chain.network} is down ({why})")
        elif chain.status == STARTING and not clock.in_grace:
            found.append(f"chain watcher {chain.network} has never run")
    late = [job for job in jobs if job.status == LATE]
    if scheduler is not None and scheduler.status == LATE and len(late) == len(jobs):
        since = (f"for {scheduler.age_seconds:.0f} s" if scheduler.age_seconds is not None
                 else "since this API started")
        found.append(f"no periodic job has run {since}: the scheduler or every worker is "
                     "down (without Redis, `passgate serve` runs them unless --no-background)")
    else:
        found.extend(_job_reason(job) for job in late)
    if signer.status == "not_configured":
        found.append("the settlement signer is not configured "
                     "(PASSGATE_CHAIN_SIGNER_PRIVATE_KEY): signed x402 payments cannot settle")
    found.extend(
        f"the settlement signer {signer.address} has {network.gas_balance_wei} wei on "
        f"{network.network}, less than one settlement needs ({network.minimum_wei} wei)"
        for network in signer.networks if network.funded is False
    )
    if attention is not None and attention.open:
        kinds = ", ".join(f"{count} {kind}" for kind, count in sorted(attention.by_kind.items()))
        found.append(f"{attention.open} piece(s) of work failed for good and wait for an "
                     f"operator ({kinds}): GET /admin/v1/attention?status=open")
    return found
