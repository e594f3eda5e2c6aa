"""The seam for x402 pay-per-call: forward a verified, unsettled payment's call; say if 2xx."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from sqlmodel import col, select

from app.errors import UpstreamError
from app.gateway.models import GatewayUsage
from app.gateway.proxy import IncomingCall
from app.gateway.service import Gateway
from app.settings import Settings
from tests.gateway.helpers import PRICE, database


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
