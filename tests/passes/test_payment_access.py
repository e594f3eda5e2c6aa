"""Who may read a payment: the buyer's key with ``payments:read``, or its claim token."""

from __future__ import annotations

from app.db.engine import create_engine, session_factory
from app.db.models.payments import Payment
from app.db.types import utcnow
from app.ids import new_id
from app.payments.service import Payments
from app.settings import Settings
from tests.factories import assert_error, create_key, key_headers, register_agent


async def record_payment(settings: Settings, agent_id: str | None) -> tuple[str, str]:
    """A settled gateway payment of ``agent_id`` and a claim token for it.

    Written straight to the database: making one through the API takes a chain and a worker
    (tests/passes), and what is under test here is only who may read it.
    """
    payment = Payment(
        id=new_id("pay"), purpose="gateway", resource="/v1/gateway/echo/get",
        fingerprint="f" * 64, network="local", scheme="push", payer="0x" + "1" * 40,
        pay_to="0x" + "2" * 40, amount_micros=1_000, agent_id=agent_id, status="settled",
        settled_at=utcnow(),
    )
    token = Payments.new_claim_token(payment, settings.key_pepper.get_secret_value())
    engine = create_engine(settings)
    try:
        async with session_factory(engine)() as session:
            session.add(payment)
            await session.commit()
    finally:
        await engine.dispose()
    return payment.id, token


async def test_the_buyers_key_with_payments_read_sees_the_payment(client, settings):
    # given
    agent = await register_agent(client)
    payment_id, _ = await record_payment(settings, agent["agentId"])

    # when
    response = await client.get(f"/v1/payments/{payment_id}",
                                headers=key_headers(agent["apiKey"]))

    # then
    assert response.status_code == 200, response.text
    assert response.json()["paymentId"] == payment_id


async def test_a_key_without_payments_read_cannot_read_its_agents_payment(client, settings):
    # given a key of the buying agent that may only call the gateway
    agent = await register_agent(client)
    gateway_only = await create_key(client, agent["apiKey"], scopes=["gateway:call"])
    payment_id, _ = await record_payment(settings, agent["agentId"])

    # when
    response = await client.get(f"/v1/payments/{payment_id}",
                                headers=key_headers(gateway_only["key"]))

    # then
    body = assert_error(response, 403, "FORBIDDEN")
    assert "payments:read" in body["error"]


async def test_a_claim_token_reads_the_payment_without_any_key(client, settings):
    # given a payment made without a key (the buyer holds only its claim token)
    payment_id, token = await record_payment(settings, None)

    # when
    response = await client.get(f"/v1/payments/{payment_id}", headers={"X-Claim-Token": token})

    # then
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "settled"
