"""A pass's key is kept sealed for replays only for ``PASSGATE_PAYMENT_REPLAY_SECONDS``: once that
window has closed, ``expire_payments`` drops it, and the payment can no longer show it."""

from __future__ import annotations

from datetime import timedelta

from litestar.testing import AsyncTestClient
from sqlalchemy import update
from sqlmodel import col, select
from x402.extensions.payment_identifier import generate_payment_id

from app.db.models.payments import Payment
from app.db.types import utcnow
from app.main import create_app
from tests.fixtures.workers import running_actors
from tests.gateway.helpers import database
from tests.passes.test_payment_identifier import (
    PRICE_1D,
    _nonce,
    _payer,
    _signed,
    signed_pass_settings,
)
from workers.expiry import expire_payments
from workers.runner import start_worker


async def test_a_kept_key_is_dropped_once_its_replay_window_closes_and_not_before(
    settings_factory, devchain, chain_client, pay_to
):
    settings = signed_pass_settings(settings_factory, devchain, pay_to)
    payer = await _payer(devchain, chain_client, 2 * PRICE_1D)
    # Given two passes bought and delivered, each kept for replays
    async with AsyncTestClient(app=create_app(settings)) as api:
        worker = start_worker(settings, threads=2)
        try:
            old_headers = await _signed(api, payer, generate_payment_id())
            old = await api.post("/v1/passes/1d", headers=old_headers)
            new_headers = await _signed(api, payer, generate_payment_id())
            new = await api.post("/v1/passes/1d", headers=new_headers)
        finally:
            worker.stop(timeout=10_000)
        assert (old.status_code, new.status_code) == (201, 201), (old.text, new.text)
        nonces = (_nonce(settings, old_headers), _nonce(settings, new_headers))
        async with database(settings) as sessions, sessions() as session:
            by_nonce = dict((await session.exec(
                select(Payment.auth_nonce, Payment.id)
                .where(col(Payment.auth_nonce).in_(nonces)))).all())
            old_id, new_id = by_nonce[nonces[0]], by_nonce[nonces[1]]
            # And the first one's replay window has closed
            await session.execute(update(Payment).where(col(Payment.id) == old_id)
                                  .values(result_expires_at=utcnow() - timedelta(seconds=1)))
            await session.commit()

        # When the payment expiry job runs (twice: it is safe to run again)
        async with running_actors(settings) as run:
            await run(expire_payments)
            await run(expire_payments)

        # Then the closed window's key is gone from the database, the open one's is kept
        async with database(settings) as sessions, sessions() as session:
            kept = dict((await session.exec(
                select(Payment.id, Payment.result_sealed)
                .where(col(Payment.id).in_((old_id, new_id))))).all())
        assert kept[old_id] is None
        assert kept[new_id] is not None
        # And the same payment sent again is refused without the key, the other still replays
        again_old = await api.post("/v1/passes/1d", headers=old_headers)
        again_new = await api.post("/v1/passes/1d", headers=new_headers)
    assert again_old.status_code == 402, again_old.text
    assert again_old.json()["code"] == "PAYMENT_ALREADY_USED"
    assert "apiKey" not in again_old.text
    assert again_new.status_code == 201, again_new.text
    assert again_new.json()["data"]["apiKey"] == new.json()["data"]["apiKey"]
    assert await chain_client.balance_of(pay_to) == 2 * PRICE_1D
