"""A payment that cannot be expired is parked for an operator after a bounded number of expiry
runs, while the others expire (``expire_payments``, kind ``payment_expiry``); once the operator
repairs the row and retries it, it expires like the others."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from eth_account import Account
from litestar.testing import AsyncTestClient
from sqlalchemy import delete, text, update
from sqlmodel import col

from app.db.engine import create_engine, session_factory
from app.db.models.attention import AttentionItem
from app.db.models.payments import Payment
from app.db.models.signer import FAILED, SettlementSubmission
from app.db.types import utcnow
from app.main import create_app
from app.settings import Settings
from chain.x402.payer import build_payer_client, sign_payment_headers
from tests.conftest import ADMIN_TOKEN
from tests.fixtures.chain import encode_call, transact
from tests.fixtures.paid import chain_settings
from tests.fixtures.workers import running_actors
from workers.expiry import expire_payments

LIMIT = 3
PRICE_1D = 10_000_000
SIGNER = 2  # anvil account that would pay the gas; no signer runs in this test
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
# A time no Python datetime holds (a hand edit's extra digit): the row no longer loads.
_FAR_OFF = {
    "sqlite": text("UPDATE payments SET fulfilled_at = '10000-01-01 00:00:00.000000' "
                   "WHERE id = :id"),
    "postgresql": text("UPDATE payments SET fulfilled_at = '10000-01-01 00:00:00+00' "
                       "WHERE id = :id"),
}


@pytest.fixture
def settings(settings_factory, devchain, pay_to) -> Settings:
    # No worker settles: the purchase answers 202 after a short wait and stays unsettled.
    return settings_factory(
        job_max_failures=LIMIT,
        **chain_settings(devchain, pay_to, settle_wait=0.2,
                         chain_signer_private_key=devchain.accounts[SIGNER].private_key),
    )


@pytest.fixture
async def sessions(settings) -> AsyncIterator[Any]:
    engine = create_engine(settings)
    try:
        yield session_factory(engine)
    finally:
        await engine.dispose()


@pytest.fixture
async def api(settings) -> AsyncIterator[AsyncTestClient]:
    async with AsyncTestClient(app=create_app(settings)) as client:
        yield client


async def _pending_purchase(api, devchain, chain_client) -> str:
    """A pass paid with a signed authorization, still unsettled: its payment id."""
    payer = Account.create()
    await transact(chain_client, devchain.accounts[0].address,
                   encode_call("mint(address,uint256)", payer.address, PRICE_1D))
    challenge = await api.post("/v1/passes/1d")
    assert challenge.status_code == 402, challenge.text
    signed = await sign_payment_headers(build_payer_client(payer, max_amount_micros=PRICE_1D),
                                        headers=dict(challenge.headers), body=challenge.json())
    bought = await api.post("/v1/passes/1d", headers=signed.v2())
    assert bought.status_code == 202, bought.text
    payment_id: str = bought.json()["paymentId"]
    return payment_id


async def _edit(sessions, statement: Any) -> None:
    async with sessions() as session:
        await session.execute(statement)
        await session.commit()


async def _payment(api, payment_id: str) -> dict[str, Any]:
    response = await api.get(f"/admin/v1/payments/{payment_id}", headers=ADMIN)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_a_payment_that_cannot_be_expired_is_parked_while_the_others_expire(
    api, settings, sessions, devchain, chain_client
):
    # given two unsettled payments whose authorizations' windows have closed, one of them
    # hand-edited to a time the row cannot be read back with
    good = await _pending_purchase(api, devchain, chain_client)
    broken = await _pending_purchase(api, devchain, chain_client)
    mine = [good, broken]
    closed = utcnow() - timedelta(hours=1)
    await _edit(sessions, update(Payment).where(col(Payment.id).in_(mine))
                .values(valid_before=closed))
    dialect = "sqlite" if settings.database_url.startswith("sqlite") else "postgresql"
    await _edit(sessions, _FAR_OFF[dialect].bindparams(id=broken))
    try:
        async with running_actors(settings) as run:
            # when the expiry job runs more often than the limit
            for _ in range(LIMIT + 2):
                await run(expire_payments, retries=0)
            [item] = (await api.get("/admin/v1/attention", params={"ref": broken},
                                    headers=ADMIN)).json()["data"]
            good_now = await _payment(api, good)

            # and an operator repairs the row and retries it
            await _edit(sessions, update(Payment).where(col(Payment.id) == broken)
                        .values(fulfilled_at=None))
            broken_before = await _payment(api, broken)
            retried = await api.post(f"/admin/v1/attention/{item['id']}/retry",
                                     json={"reason": "fixed fulfilled_at"}, headers=ADMIN)
            await run(expire_payments, retries=0)
            broken_after = await _payment(api, broken)
    finally:
        # nothing of this test's may be settled or parked later in the session
        await _edit(sessions, update(Payment).where(col(Payment.id) == broken)
                    .values(fulfilled_at=None))
        await _edit(sessions, update(SettlementSubmission)
                    .where(col(SettlementSubmission.purpose_ref).in_(mine))
                    .values(status=FAILED))
        await _edit(sessions, delete(AttentionItem).where(col(AttentionItem.ref) == broken))

    # then the broken one was parked after the limit (counted no further), untouched, while
    # the good one expired; after the repair and retry it expired too
    assert (item["kind"], item["status"], item["attempts"], item["actor"]) == (
        "payment_expiry", "open", LIMIT, "expire_payments")
    # SQLite's driver cannot parse the time, asyncpg cannot fit it in a datetime
    assert item["errorType"] in ("builtins.ValueError", "builtins.OverflowError")
    assert good_now["status"] == "expired"
    assert broken_before["status"] in ("pending", "submitted")
    assert retried.status_code == 200, retried.text
    assert broken_after["status"] == "expired"
