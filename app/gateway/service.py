"""The gateway: price a call, pay for it, forward it, relay the answer, record the usage.

Upstream outcomes and what they cost the caller:

- **2xx**: relayed; the reserved price is kept (charged exactly once). An answer of at most
  64 KiB with a Content-Length, and any answer to HEAD, is read whole first (a break while
  reading it is still a 502, uncharged); anything else streams. The usage row is finalised
  in the background, in batches, after the answer went out, so it adds no latency.
- **1xx/3xx/4xx**: relayed unchanged (the caller's request was the problem, or a redirect for
  the caller to follow), and not charged: the reservation is released first.
- **5xx, timeout, refused or broken connection**: ``502 UPSTREAM_ERROR`` (the SPEC's "failed or
  timed out"; a 5xx body may carry upstream internals, so it is not passed on, but the status,
  the upstream request id and ``Retry-After`` are), released, not charged.

The price is reserved before the call and the response headers decide, so a 2xx whose body
then breaks mid-stream is charged: the upstream did the work.

Flows of several transactions (no transaction is ever open while the upstream is called):

- **a call paid with credits** (:meth:`Gateway.call_with_credits`): reserve (committed before
  forwarding, :mod:`~app.gateway.reservations`) -> forward -> keep (batched, after the answer
  went out) or release (its own transaction) (:mod:`~app.gateway.outcomes`);
- **a call paid per call with x402** (:mod:`app.gateway.paid`): accept -> reopen -> take ->
  forward -> settle or fail, each step committed;
- **the stale-reservation sweeper** (``workers/gateway.py``): one transaction per abandoned
  call (:func:`~app.gateway.outcomes.release_abandoned`);
- **an admin change of a provider** (:mod:`~app.gateway.provider_admin`): one transaction
  with its audit entry; after the commit this process drops its cached providers, the others
  reload theirs within ``gateway_provider_cache_seconds``.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from litestar.response.base import ASGIResponse
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from app.auth.principal import Principal
from app.crypto import SecretBox
from app.db.models.gateway import OpenCall
from app.db.paging import Page, PageParams
from app.db.types import to_utc, utcnow
from app.db.uow import UnitOfWork
from app.errors import Forbidden, UpstreamError, ValidationFailed
from app.gateway import repository, reservations
from app.gateway.headers import BALANCE, COST, USAGE_ID, response_headers
from app.gateway.incoming import IncomingCall
from app.gateway.lease_pool import LeasedCall, LeasePool
from app.gateway.outcomes import KeptCalls, Outcome, release_now
from app.gateway.pricing import Quote, quote_call
from app.gateway.providers import ProviderRegistry
from app.gateway.relay import BufferedRelay, RelayedResponse, discard, fits_buffer, read_whole
from app.gateway.reservations import Reservation
from app.gateway.schemas import usage_view
from app.gateway.upstream import UpstreamClient, UpstreamFailure, upstream_error
from app.gateway.usage_credits import settle_with_credits
from app.gateway.usage_pricing import MAX_USAGE_BODY
from app.ids import new_id
from app.metrics.instruments import gateway_call, gateway_charged
from app.payments.service import Payments
from app.settings import Settings

log = logging.getLogger("passgate.gateway")

@dataclass(slots=True)
class Forwarded:
    """An upstream answer, before its body is read.

    ``ok`` is True exactly when the upstream answered 2xx: the only case in which the call may
    be paid for. Then or for a 1xx/3xx/4xx, ``response`` relays the answer; on a failure
    (5xx, timeout, unreachable) ``error`` is the ``UPSTREAM_ERROR`` to raise instead.
    """

    usage_id: str
    ok: bool
    status: int | None
    response: ASGIResponse | None = None
    error: UpstreamError | None = None
    # The relayed response's headers (the same list: appending adds to the response).
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    # For an ``ok`` x402 call: what to record once the payment is settled (or not).
    outcome: Outcome | None = None
    # Whose price an ``ok`` x402 call pays once settled (for the metrics).
    provider: str = ""
    price_micros: int = 0


class Gateway:
    """One per process (on the runtime): providers, the pooled upstream client, the outcome
    writer."""

    def __init__(self, settings: Settings, sessions: async_sessionmaker[UnitOfWork],
                 payments: Payments | None = None) -> None:
        self.settings = settings
        self.sessions = sessions
        # For calls paid per call with x402 (the route reaches everything through the gateway:
        # one dependency, where several cost Litestar a task group per request).
        self.payments = payments
        bind = sessions.kw.get("bind")
        # PostgreSQL reserves on a bare connection (reservations.reserve_fast); others on a
        # session.
        self._engine: AsyncEngine | None = (
            bind if isinstance(bind, AsyncEngine) and bind.dialect.name == "postgresql" else None
        )
        self.box = SecretBox(settings.key_pepper.get_secret_value())
        self.registry = ProviderRegistry(settings, sessions, self.box)
        self.upstream = UpstreamClient(settings)
        # Outcomes always commit durably: that flush is what makes the reservations committed
        # asynchronously before them durable too.
        self.kept = KeptCalls(sessions)
        # Credit leases (app.gateway.leases), when turned on: calls paid from memory.
        self.leases = LeasePool(settings, sessions) if settings.gateway_credit_leases else None

    async def aclose(self) -> None:
        """Write the outcomes still queued, then close the upstream connections."""
        if self.leases is not None:
            await self.leases.aclose()
        await self.kept.aclose()
        await self.upstream.aclose()

    # -- pricing -------------------------------------------------------------------------

    async def quote(self, call: IncomingCall) -> Quote:
        """The provider and price of a call (also what an x402 challenge asks for)."""
        return await quote_call(self.registry, call)

    # -- paying with credits -------------------------------------------------------------

    async def call_with_credits(self, caller: Principal, call: IncomingCall) -> ASGIResponse:
        """Reserve the price from the caller's credits, forward, keep or release the charge."""
        if caller.agent_id is None:
            raise Forbidden("This key has no agent, so no credits to pay with.")
        quote = await quote_call(self.registry, call)
        pricing = quote.provider.usage_pricing
        if pricing is not None:
            # Priced by usage: the maximum is reserved, the unused part given back after.
            quote = dataclasses.replace(quote, price_micros=pricing.max_micros)
        usage = self._usage(quote, call, caller, payment="credits")
        if self.leases is not None and pricing is None and usage.price_micros > 0:
            return await self._call_on_lease(self.leases, quote, call, usage)
        low = self.settings.credits_low_threshold_micros
        relax = self.settings.gateway_async_commit
        reservation = None
        if self._engine is not None:
            reservation = await reservations.reserve_fast(
                self._engine, usage, low_threshold_micros=low, relax_durability=relax
            )
        if reservation is None:
            async with self.sessions() as session:
                reservation = await reservations.reserve(
                    session, usage, low_threshold_micros=low, relax_durability=relax
                )
                await session.commit()
        by_usage = pricing is not None
        forwarded = await self._forward(quote, call, usage.id, reservation, keep=not by_usage,
                                        whole=by_usage)
        if forwarded.error is not None:
            raise forwarded.error
        assert forwarded.response is not None
        if pricing is not None and forwarded.ok and forwarded.outcome is not None:
            assert isinstance(forwarded.response, BufferedRelay)
            cost = await settle_with_credits(
                self.sessions, pricing, quote.provider.name, reservation, forwarded.outcome,
                bytes(forwarded.response.body), forwarded.headers)
            gateway_charged(quote.provider.name, "credits", cost)
        return forwarded.response

    async def _call_on_lease(
        self, pool: LeasePool, quote: Quote, call: IncomingCall, usage: OpenCall
    ) -> ASGIResponse:
        """Paid from this process's credit lease: no database round trip on the way."""
        leased = await pool.pay(usage)
        forwarded = await self._forward(quote, call, usage.id, None, leased=leased)
        if forwarded.error is not None:
            raise forwarded.error
        assert forwarded.response is not None
        return forwarded.response

    # -- x402 seam ------------------------------------------------------------------------

    async def forward_unsettled(
        self, call: IncomingCall, quote: Quote, *, payment_id: str, caller: Principal | None = None,
        whole: bool = False,
    ) -> Forwarded:
        """Forward a call whose x402 payment is verified but not settled yet.

        Records the usage (``payment="x402"``, no credits touched) and reports whether the
        upstream answered 2xx. When ``ok``: settle the payment, then call
        :meth:`finish_unsettled` with the result (the usage stays ``pending`` until then) and
        return ``response`` (headers such as ``PAYMENT-RESPONSE`` can still be appended to
        ``headers``). Otherwise drop the payment and return ``response`` (a relayed 1xx/3xx/4xx)
        or raise ``error`` (502); the usage is already recorded as failed.
        """
        usage = self._usage(quote, call, caller, payment="x402", payment_id=payment_id)
        async with self.sessions() as session:
            await reservations.open_call(session, usage)
            await session.commit()
        return await self._forward(quote, call, usage.id, None, keep=False, whole=whole)

    async def finish_unsettled(self, forwarded: Forwarded, *, settled: bool) -> None:
        """Record how the payment of an ``ok`` x402 call ended: paid, or not (never charged).

        An unpaid answer is not served: its upstream connection is released here.
        """
        outcome = forwarded.outcome
        if outcome is None:
            return
        if settled:
            self.kept.add(forwarded.usage_id, outcome)
            gateway_charged(forwarded.provider, "x402", forwarded.price_micros)
            return
        if isinstance(forwarded.response, RelayedResponse):
            await forwarded.response.aclose()
        unpaid = Outcome(
            outcome.upstream_status,
            outcome.latency_ms,
            outcome.upstream_request_id,
            "payment_failed",
        )
        await release_now(self.sessions, forwarded.usage_id, unpaid)

    # -- usage -----------------------------------------------------------------------------

    async def usage_page(
        self,
        session: UnitOfWork,
        caller: Principal,
        params: PageParams,
        *,
        provider: str | None,
        since: str | None,
        until: str | None,
    ) -> Page:
        """The caller's agent's gateway calls, newest first, filtered by time and provider."""
        if caller.agent_id is None:
            return Page(data=[], next_cursor=None)
        rows, next_cursor = await repository.search_usage(
            session,
            params,
            agent_id=caller.agent_id,
            provider=provider,
            since=parse_time(since, "from"),
            until=parse_time(until, "to"),
        )
        return Page(data=[usage_view(u) for u in rows], next_cursor=next_cursor)

    # -- internals -------------------------------------------------------------------------

    @staticmethod
    def _usage(
        quote: Quote,
        call: IncomingCall,
        caller: Principal | None,
        *,
        payment: str,
        payment_id: str | None = None,
    ) -> OpenCall:
        return OpenCall(
            id=new_id("use"),
            agent_id=caller.agent_id if caller else None,
            key_id=caller.key_id if caller else None,
            platform_id=caller.platform_id if caller else None,
            provider=quote.provider.name,
            method=call.method,
            route=quote.route[:2048],
            price_micros=quote.price_micros,
            payment=payment,
            payment_id=payment_id,
            created_at=utcnow(),
        )

    async def _forward(
        self,
        quote: Quote,
        call: IncomingCall,
        usage_id: str,
        reservation: Reservation | None,
        *,
        keep: bool = True,
        whole: bool = False,
        leased: LeasedCall | None = None,
    ) -> Forwarded:
        provider = quote.provider
        try:
            response, latency_ms = await self.upstream.open(call, provider)
        except UpstreamFailure as failure:
            gateway_call(provider.name, failure.reason, failure.latency_ms)
            await self._release(
                usage_id, Outcome(None, failure.latency_ms, error=failure.reason), leased
            )
            return Forwarded(
                usage_id, ok=False, status=None, error=upstream_error(failure, provider.name)
            )
        except BaseException:
            # Cancelled (shutdown) or a bug: the caller gets no answer, so no charge either.
            gateway_call(provider.name, "cancelled", None)
            await self._release(usage_id, Outcome(None, None, error="cancelled"), leased)
            raise
        try:
            return await self._answer(
                quote, call, usage_id, reservation, response, latency_ms, keep=keep,
                whole=whole, leased=leased,
            )
        except BaseException:
            await discard(response)
            await self._release(
                usage_id, Outcome(response.status_code, latency_ms, error="cancelled"), leased
            )
            raise

    async def _release(self, usage_id: str, outcome: Outcome, leased: LeasedCall | None) -> None:
        """The call is not charged: its lease gets the price back, or its reservation is
        released."""
        if leased is None:
            await release_now(self.sessions, usage_id, outcome)
        elif self.leases is not None:
            self.leases.finish(leased, ok=False, values=_outcome_columns(outcome))

    async def _answer(
        self,
        quote: Quote,
        call: IncomingCall,
        usage_id: str,
        reservation: Reservation | None,
        response: httpx.Response,
        latency_ms: int,
        *,
        keep: bool,
        whole: bool = False,
        leased: LeasedCall | None = None,
    ) -> Forwarded:
        """Decide on the charge from the status, then relay (or replace) the answer (read
        ``whole`` when its usage decides the charge)."""
        provider = quote.provider
        status = response.status_code
        headers, upstream_id = response_headers(response, provider)
        refused = Outcome(status, latency_ms, upstream_id, "upstream_status")
        ok = 200 <= status < 300
        if status >= 500:
            gateway_call(provider.name, "upstream_error", latency_ms)
            retry_after = response.headers.get("retry-after")
            await discard(response)
            await self._release(usage_id, refused, leased)
            return Forwarded(
                usage_id,
                ok=False,
                status=status,
                error=upstream_error(
                    None,
                    provider.name,
                    status=status,
                    request_id=upstream_id,
                    retry_after=retry_after,
                ),
            )
        body: bytes | None = None
        # A HEAD answer has no body, so a streamed relay of it would never be iterated (and
        # its connection never released): it is read, which ends it, and sent whole.
        head = call.method == "HEAD"
        if head or fits_buffer(response) or (whole and ok):
            try:
                # Read whole for its usage: bounded (a larger answer is an uncharged 502).
                body = await read_whole(response, MAX_USAGE_BODY if whole else None)
            except httpx.HTTPError as exc:
                # Nothing has reached the caller yet, so this is still an uncharged failure.
                failure = UpstreamFailure(
                    "upstream_error",
                    f"The upstream provider '{provider.name}' broke off its answer.",
                    latency_ms,
                )
                log.warning("gateway body from %s broke: %s", provider.name,
                            type(exc).__name__)
                gateway_call(provider.name, "upstream_error", latency_ms)
                await self._release(
                    usage_id, Outcome(status, latency_ms, upstream_id, "upstream_error"), leased)
                return Forwarded(usage_id, ok=False, status=status,
                                 error=upstream_error(failure, provider.name))
        outcome = Outcome(status, latency_ms, upstream_id)
        gateway_call(provider.name, "success" if ok else "client_error", latency_ms)
        if ok and leased is not None and self.leases is not None:
            self.leases.finish(leased, ok=True, values=_outcome_columns(outcome))
            gateway_charged(provider.name, "credits", quote.price_micros)
        elif ok and keep:
            self.kept.add(usage_id, outcome)
            if reservation is not None:
                gateway_charged(provider.name, "credits", reservation.price_micros)
        elif not ok:
            await self._release(usage_id, refused, leased)

        headers.append((USAGE_ID, usage_id.encode()))
        headers.append((COST, str(quote.price_micros if ok else 0).encode()))
        if reservation is not None and reservation.balance_after_micros is not None:
            balance = reservation.balance_after_micros + (0 if ok else reservation.price_micros)
            headers.append((BALANCE, str(balance).encode()))
        relayed: ASGIResponse
        if body is not None:
            # For HEAD the upstream's Content-Length stays as it is: the size a GET would get.
            relayed = BufferedRelay(
                body=b"" if head else body,
                status_code=status,
                raw_headers=headers,
                is_head_response=head,
            )
        else:
            relayed = RelayedResponse(
                upstream=response, provider=provider.name, status_code=status, raw_headers=headers
            )
        return Forwarded(
            usage_id,
            ok=ok,
            status=status,
            response=relayed,
            headers=headers,
            outcome=outcome if ok else None,
            provider=provider.name,
            price_micros=quote.price_micros,
        )


def _outcome_columns(outcome: Outcome) -> dict[str, Any]:
    return {
        "upstream_status": outcome.upstream_status,
        "latency_ms": outcome.latency_ms,
        "upstream_request_id": outcome.upstream_request_id,
        "error": outcome.error,
        "completed_at": utcnow(),
    }


def parse_time(value: str | None, name: str) -> datetime | None:
    """An RFC 3339 query value; a time without an offset is taken as UTC."""
    if value is None or value == "":
        return None
    try:
        moment = datetime.fromisoformat(value.strip().replace("z", "Z"))
        if moment.tzinfo is None:
            return moment.replace(tzinfo=UTC)
        # In UTC here, where the database would convert it: 0001-01-01T00:00+01:00 is before
        # the first representable instant (UnrepresentableTime, a ValueError), and that must
        # be the caller's 400, not a 500.
        return to_utc(moment)
    except ValueError:
        raise ValidationFailed(f"{name} must be an RFC 3339 timestamp.") from None


__all__ = ["Forwarded", "Gateway", "IncomingCall", "Quote"]
