"""Gateway actors: give back reservations whose call was abandoned mid-flight, and the credit
leases of processes that died."""

from __future__ import annotations

import logging

import dramatiq

from app.db.models.attention import GATEWAY_LEASE, GATEWAY_RESERVATION
from app.gateway import leases, outcomes
from workers import actor_context
from workers.attention import each
from workers.periodic import periodic

log = logging.getLogger("passgate.gateway")

QUEUE = "gateway"
RELEASE_STALE = "gateway_release_stale"
RELEASE_EVERY_SECONDS = 60.0


@periodic(RELEASE_EVERY_SECONDS)
@dramatiq.actor(actor_name=RELEASE_STALE, queue_name=QUEUE, max_retries=0, time_limit=120_000)
async def release_stale() -> None:
    """Release credit reservations still pending after the reservation TTL.

    An API process that dies between reserving and recording the outcome leaves a ``pending``
    usage row; this puts the money back. Idempotent: each release is a conditional update of
    that row, so a call finishing at the same moment is released or kept, never both. One
    transaction per call: a batch never holds many agents' locks at once, and a row that
    cannot be released is parked for an operator without holding up the others.
    """
    ctx = actor_context.current()
    stale = await outcomes.stale_reservations(ctx.sessions,
                                              ctx.settings.gateway_reservation_ttl_seconds)
    done = await each(GATEWAY_RESERVATION, stale, outcomes.release_abandoned, RELEASE_STALE)
    if done:
        log.warning("released %d abandoned gateway reservations", done)
    # Credit leases whose process died (or lost the database) give back what they had not
    # used; calls it served but never recorded stay free (app.gateway.leases).
    expired = await leases.abandoned(ctx.sessions, ctx.settings.gateway_lease_grace_seconds)
    closed = await each(GATEWAY_LEASE, expired, leases.close_abandoned, RELEASE_STALE)
    if closed:
        log.warning("closed %d abandoned gateway credit leases", closed)
