"""Chain actors: the per-network watcher, its tick, the settlement signer and its sweeper.

- ``chain_tick`` (every second, from the scheduler) sends ``chain_watch`` for each enabled
  network whose next run is due. The watcher run itself re-checks that under its lease, so a
  duplicate message is a no-op.
- ``chain_watch`` runs one bounded pass (``app.transfers.watcher``); when it stopped with work
  left (a backfill, a long confirmation batch) it sends itself again at once.
- ``settlement_settle`` moves one submission one step and re-sends itself with the delay the
  step asks for; ``settlement_sweep`` re-drives submissions whose message was lost.

Both passes go through the chain integration (``app.integrations.chain``), which decides which
area handles a confirmed transfer or a finished submission.

Importing this module stays cheap (the scheduler process only needs the actor names): web3
and the services behind the actors are imported when an actor first runs.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import dramatiq

from app.db.models.attention import CHAIN_WATCHER, SETTLEMENT
from app.db.types import utcnow
from app.jobs import Job, JobQueue
from app.logs import context as log_context
from app.signer.tasks import SETTLE_ACTOR, SETTLE_QUEUE, settle_job
from workers import actor_context
from workers.attention import parks
from workers.periodic import periodic

if TYPE_CHECKING:
    from chain.client import ChainClient
    from chain.networks import Network

log = logging.getLogger("passgate.chain")

WATCH_QUEUE = "chain"
WATCH = "chain_watch"
TICK = "chain_tick"
SWEEP = "settlement_sweep"
TICK_EVERY_SECONDS = 1.0
SWEEP_EVERY_SECONDS = 5.0
_SWEEP_BATCH = 200


def _jobs() -> JobQueue:
    return JobQueue(dramatiq.get_broker)


def _client(ctx: actor_context.WorkerContext, network: Network) -> ChainClient:
    from chain.client import ChainClient

    # One client (and HTTP connection pool) per network per worker loop.
    return ctx.resource(
        f"chain_client:{network.name}",
        lambda: ChainClient.for_network(network, timeout=ctx.settings.chain_rpc_timeout_seconds),
        lambda client: client.close(),
    )


@periodic(TICK_EVERY_SECONDS)
@dramatiq.actor(actor_name=TICK, queue_name=WATCH_QUEUE, max_retries=0, time_limit=10_000)
async def tick() -> None:
    """Send a watcher run for every enabled network that is due (or has never run)."""
    from app.attention import filters as attention
    from app.transfers import service as transfers

    ctx = actor_context.current()
    networks = ctx.settings.networks()
    if not networks:
        return
    now = utcnow()
    async with ctx.sessions() as session:
        states = {w.network: w for w in await transfers.list_watchers(session)}
        stalled = await attention.parked_refs(session, CHAIN_WATCHER, list(networks))
    due = []
    for name in networks:
        if name in stalled:
            continue  # parked for an operator: see GET /admin/v1/attention
        state = states.get(name)
        due_now = state is None or state.next_run_at is None or state.next_run_at <= now
        free = state is None or state.lease_until is None or state.lease_until < now
        if due_now and free:
            due.append(Job(WATCH_QUEUE, WATCH, (name,)))
    await _jobs().send(due)


@dramatiq.actor(actor_name=WATCH, queue_name=WATCH_QUEUE, max_retries=3, time_limit=300_000)
@parks(CHAIN_WATCHER)
async def watch(network: str) -> None:
    """One bounded watcher pass over ``network``; continues at once when work is left."""
    from app.integrations import chain as integration

    log_context.bind(network=network)
    ctx = actor_context.current()
    found = ctx.settings.networks().get(network)
    if found is None:
        return  # disabled since the message was sent
    report = await integration.watch(ctx.sessions, _client(ctx, found), ctx.settings, found)
    if report.ran and report.more:
        await _jobs().send([Job(WATCH_QUEUE, WATCH, (network,))])


@dramatiq.actor(actor_name=SETTLE_ACTOR, queue_name=SETTLE_QUEUE, max_retries=5,
                time_limit=120_000)
@parks(SETTLEMENT)
async def settle(submission_id: str) -> None:
    """Advance one settlement one step; re-sends itself for the next one."""
    from app.db.models.signer import SettlementSubmission
    from app.integrations import chain as integration
    from app.signer.config import SignerConfig

    log_context.bind(submission_id=submission_id)
    ctx = actor_context.current()
    async with ctx.sessions() as session:
        submission = await session.get(SettlementSubmission, submission_id)
    if submission is None:
        return
    if submission.purpose_ref.startswith("pay_"):
        log_context.bind(payment_id=submission.purpose_ref)
    network = ctx.settings.networks().get(submission.network)
    config = SignerConfig.from_settings(ctx.settings, network) if network else None
    if network is None or config is None:
        # Left for the sweeper: configuration can be fixed without losing the request.
        log.error("settlement %s: no signer key or network %r is not enabled",
                  submission_id, submission.network)
        return
    step = await integration.advance(ctx.sessions, _client(ctx, network), config, submission_id)
    if step.delay is not None:
        await _jobs().send([settle_job(submission_id, step.delay)])


@periodic(SWEEP_EVERY_SECONDS)
@dramatiq.actor(actor_name=SWEEP, queue_name=SETTLE_QUEUE, max_retries=0, time_limit=30_000)
async def sweep() -> None:
    """Re-drive open settlements whose next step is overdue (a lost message, a crash)."""
    from app.signer import service as signer

    ctx = actor_context.current()
    async with ctx.sessions() as session:
        due = await signer.due_submissions(session, utcnow(), _SWEEP_BATCH)
    if due:
        log.info("settlement sweep: re-driving %d submission(s)", len(due))
        await _jobs().send([settle_job(item.id) for item in due])


__all__ = ["settle", "sweep", "tick", "watch"]
