"""The seam for x402 pay-per-call: forward a verified, unsettled payment's call; say if 2xx."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import pytest
from sqlmodel import col, select

from app.db.models.gateway import GatewayUsage
from app.db.models.payments import Payment
from app.errors import PaymentAlreadyUsed, UpstreamError
from app.gateway.incoming import IncomingCall
from app.gateway.paid import call_with_x402
from app.gateway.service import Gateway
from app.ids import new_id
from app.settings import Settings
from tests.gateway.helpers import PRICE, database, upstream_hits


@pytest.fixture
async def gateway(
    settings_factory: Callable[..., Settings], providers: list[dict[str, Any]]
) -> AsyncIterator[Gateway]:
    settings = settings_factory(providers=providers)
    async with database(settings) as sessions:
        gateway = Gateway(settings, sessions)
        try:
            yield gateway
        finally:
            await gateway.aclose()


@pytest.fixture
async def single_connection_gateway(
    settings_factory: Callable[..., Settings], providers: list[dict[str, Any]]
) -> AsyncIterator[Gateway]:
    """A gateway with one upstream connection: a leaked one starves the next call."""
    settings = settings_factory(
        providers=providers, gateway_max_connections=1, gateway_max_keepalive_connections=1
    )
    async with database(settings) as sessions:
        gateway = Gateway(settings, sessions)
        try:
            yield gateway
        finally:
            await gateway.aclose()


def incoming(path: str) -> IncomingCall:
    return IncomingCall(
        provider="echo",
        method="GET",
        path=path,
        query=b"",
        headers=[(b"x-payment", b"0xabc")],
        body=b"",
        request_id="req_seam",
    )


async def usage_row(gateway: Gateway, usage_id: str) -> GatewayUsage:
    await gateway.kept.aclose()  # let a 2xx outcome be written
    async with gateway.sessions() as session:
        stmt = select(GatewayUsage).where(col(GatewayUsage.id) == usage_id)
        return (await session.exec(stmt)).one()


async def test_a_2xx_is_reported_ok_and_recorded_as_paid_by_x402(gateway: Gateway) -> None:
    call = incoming("/echo/paid")
    quote = await gateway.quote(call)

    forwarded = await gateway.forward_unsettled(call, quote, payment_id="pay_seam1")
    await gateway.finish_unsettled(forwarded, settled=True)

    assert forwarded.ok
    assert forwarded.status == 200
    assert forwarded.response is not None
    row = await usage_row(gateway, forwarded.usage_id)
    assert (row.payment, row.payment_id, row.agent_id) == ("x402", "pay_seam1", None)
    assert (row.status, row.price_micros, row.cost_micros) == ("succeeded", PRICE, PRICE)


async def test_an_upstream_failure_is_not_ok_and_carries_the_502(gateway: Gateway) -> None:
    call = incoming("/status/500")

    forwarded = await gateway.forward_unsettled(
        call, await gateway.quote(call), payment_id="pay_seam2"
    )

    assert not forwarded.ok
    assert forwarded.response is None
    assert isinstance(forwarded.error, UpstreamError)
    row = await usage_row(gateway, forwarded.usage_id)
    assert (row.status, row.cost_micros, row.upstream_status) == ("failed", 0, 500)


async def test_a_4xx_is_not_ok_but_relayed(gateway: Gateway) -> None:
    call = incoming("/status/404")

    forwarded = await gateway.forward_unsettled(
        call, await gateway.quote(call), payment_id="pay_seam3"
    )

    assert not forwarded.ok
    assert forwarded.status == 404
    assert forwarded.response is not None
    assert forwarded.error is None
    row = await usage_row(gateway, forwarded.usage_id)
    assert (row.status, row.cost_micros) == ("failed", 0)


async def test_a_2xx_whose_payment_did_not_settle_is_recorded_as_not_charged(
    gateway: Gateway,
) -> None:
    call = incoming("/echo/unpaid")
    forwarded = await gateway.forward_unsettled(
        call, await gateway.quote(call), payment_id="pay_seam4"
    )

    await gateway.finish_unsettled(forwarded, settled=False)

    row = await usage_row(gateway, forwarded.usage_id)
    assert (row.status, row.error, row.cost_micros) == ("failed", "payment_failed", 0)
    assert row.upstream_status == 200


async def test_an_unpaid_streamed_answer_gives_its_upstream_connection_back(
    single_connection_gateway: Gateway,
) -> None:
    # Given a 2xx answer large enough to be streamed, whose payment then did not settle
    gateway = single_connection_gateway
    call = incoming("/large")
    forwarded = await gateway.forward_unsettled(
        call, await gateway.quote(call), payment_id="pay_seam5"
    )
    assert forwarded.ok

    # When it is recorded as unpaid (its answer is never sent)
    await gateway.finish_unsettled(forwarded, settled=False)

    # Then the next call still gets the one connection
    nxt = incoming("/echo/next")
    after = await gateway.forward_unsettled(nxt, await gateway.quote(nxt), payment_id="pay_seam6")
    assert after.ok, after.error


async def test_a_streamed_answer_that_cannot_be_sent_gives_its_connection_back(
    single_connection_gateway: Gateway,
) -> None:
    # Given a streamed 2xx answer, and a caller gone before its headers could be sent
    gateway = single_connection_gateway
    call = incoming("/large")
    forwarded = await gateway.forward_unsettled(
        call, await gateway.quote(call), payment_id="pay_seam7"
    )
    assert forwarded.response is not None

    async def gone(message: Any) -> None:
        raise OSError("the caller hung up")

    async def receive() -> Any:
        return {"type": "http.disconnect"}

    # When sending it fails before a byte of the body was read
    with pytest.raises(OSError, match="hung up"):
        await forwarded.response({"type": "http"}, receive, gone)  # type: ignore[arg-type]
    await gateway.finish_unsettled(forwarded, settled=True)

    # Then the next call still gets the one connection
    nxt = incoming("/echo/next")
    after = await gateway.forward_unsettled(nxt, await gateway.quote(nxt), payment_id="pay_seam8")
    assert after.ok, after.error


class StandInPayments:
    """The chain side of :func:`call_with_x402`, minus the chain: ``accept`` hands every
    request the same pending payment, as the real one does for a repeated authorization."""

    def __init__(self, sessions: Any, *, settle_fails: bool = False) -> None:
        self.sessions = sessions
        self.settle_fails = settle_fails
        self.payment: Payment | None = None

    async def accept(self, session: Any, paid: Any, headers: Any, **_: Any) -> Payment:
        if self.payment is None:
            self.payment = Payment(
                id=new_id("pay"), purpose="gateway", resource=paid.resource,
                fingerprint="f" * 64, network="local", scheme="exact", payer="0x" + "1" * 40,
                pay_to="0x" + "2" * 40, amount_micros=paid.price_micros, status="pending",
            )
            session.add(self.payment)
            await session.flush()
        return self.payment

    async def get(self, session: Any, payment_id: str) -> Payment:
        found: Payment = await session.get(Payment, payment_id)
        return found

    async def request_settlement(self, session: Any, payment: Payment) -> None:
        if self.settle_fails:
            raise RuntimeError("the settlement could not be requested")

    async def wait_until_final(self, sessions: Any, payment_id: str, within: float) -> Any:
        return SimpleNamespace(id=payment_id, status="settled", failure_reason=None)

    def response_header(self, final: Any) -> tuple[str, str]:
        return "PAYMENT-RESPONSE", "stand-in"


def x402_runtime(gateway: Gateway) -> Any:
    return SimpleNamespace(sessions=gateway.sessions, settings=gateway.settings, redis=None)


async def test_one_payment_sent_three_times_at_once_pays_for_one_call(
    gateway: Gateway, upstream_url: str
) -> None:
    # Given one pending payment that three identical requests present at the same time, for
    # a call the upstream takes a moment to answer
    payments = StandInPayments(gateway.sessions)
    call = replace(incoming("/slow"), query=b"seconds=0.3", headers=[])
    before = await upstream_hits(upstream_url, "/slow")

    outcomes = await asyncio.gather(
        *[call_with_x402(x402_runtime(gateway), payments, gateway, call, {})  # type: ignore[arg-type]
          for _ in range(3)],
        return_exceptions=True,
    )

    # Then one request forwards the call; the others are told the payment is taken
    served = [o for o in outcomes if not isinstance(o, BaseException)]
    refused = [o for o in outcomes if isinstance(o, PaymentAlreadyUsed)]
    assert (len(served), len(refused)) == (1, 2), outcomes
    assert await upstream_hits(upstream_url, "/slow") == before + 1


async def test_a_settlement_that_cannot_be_requested_gives_the_connection_back(
    single_connection_gateway: Gateway,
) -> None:
    # Given a streamed 2xx answer whose settlement then cannot even be requested
    gateway = single_connection_gateway
    failing = StandInPayments(gateway.sessions, settle_fails=True)
    with pytest.raises(RuntimeError, match="could not be requested"):
        await call_with_x402(x402_runtime(gateway), failing, gateway,  # type: ignore[arg-type]
                             replace(incoming("/large"), headers=[]), {})

    # Then the answer is dropped with its connection released: the next call gets through
    nxt = incoming("/echo/next")
    after = await gateway.forward_unsettled(nxt, await gateway.quote(nxt), payment_id="pay_seam9")
    assert after.ok, after.error
