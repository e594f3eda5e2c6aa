"""A job that cannot succeed stops after a bounded number of attempts and waits for an operator.

Each test runs the real actors on a worker in this process, breaks one row the way a bug or a
hand edit would, and checks through the admin API what an operator sees and can do.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import delete, update
from sqlmodel import col, select

from app.db.engine import create_engine, session_factory
from app.db.models.attention import AttentionItem
from app.db.models.events import Event
from app.db.models.keys import ApiKey
from app.db.models.webhooks import WebhookAttempt, WebhookMessage
from app.ids import new_id
from tests.factories import key_headers, register_agent, rfc3339_in
from tests.fixtures.webhook_receiver import Receiver, Reply
from tests.fixtures.workers import running_actors
from workers.expiry import expire_keys
from workers.webhooks import deliver, fan_out, sweep

LIMIT = 3


@pytest.fixture
def settings(settings_factory):
    return settings_factory(job_max_failures=LIMIT, webhook_sweep_grace_seconds=0.0,
                            redis_url="")


@pytest.fixture
async def sessions(settings) -> AsyncIterator[Any]:
    engine = create_engine(settings)
    try:
        yield session_factory(engine)
    finally:
        await engine.dispose()


_PLANTED: list[str] = []


@pytest.fixture(autouse=True)
async def remove_planted_events(sessions) -> AsyncIterator[None]:
    """Events these tests write by hand are broken on purpose, and their work is parked: none
    outlives its test (other tests read every event, and health, of the shared database)."""
    yield
    async with sessions() as session:
        messages = select(WebhookMessage.id).where(col(WebhookMessage.event_id).in_(_PLANTED))
        await session.execute(delete(WebhookAttempt).where(
            col(WebhookAttempt.message_id).in_(messages)))
        await session.execute(delete(WebhookMessage).where(
            col(WebhookMessage.event_id).in_(_PLANTED)))
        await session.execute(delete(Event).where(col(Event.id).in_(_PLANTED)))
        # A key broken on purpose is repaired and expired, or every later expiry run anywhere
        # in the session would park it again.
        await session.execute(update(ApiKey).where(col(ApiKey.id).in_(_PLANTED))
                              .values(kind="pk", status="expired"))
        await session.execute(delete(AttentionItem).where(col(AttentionItem.ref).in_(_PLANTED)))
        await session.commit()
    _PLANTED.clear()


async def _attention(client, admin_headers, **params: str) -> list[dict[str, Any]]:
    response = await client.get("/admin/v1/attention", params=params, headers=admin_headers)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["data"]
    return items


async def _event(sessions, event_type: str, data: dict[str, Any]) -> str:
    async with sessions() as session:
        event = Event(id=new_id("evt"), type=event_type, data=data)
        _PLANTED.append(event.id)
        session.add(event)
        await session.commit()
        return event.id


def _test_data(endpoint_id: str, message: str) -> dict[str, Any]:
    return {"endpointId": endpoint_id, "message": message, "sentAt": rfc3339_in(0)}


async def _dispatched(sessions, event_id: str) -> bool:
    async with sessions() as session:
        event = await session.get(Event, event_id)
        assert event is not None
        return event.dispatched_at is not None


async def _messages_for(sessions, event_id: str) -> list[WebhookMessage]:
    async with sessions() as session:
        rows = await session.exec(
            select(WebhookMessage).where(col(WebhookMessage.event_id) == event_id))
        return list(rows.all())


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    server = await Receiver({"/hook": Reply(200)}).start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def endpoint(client, admin_headers, receiver) -> AsyncIterator[str]:
    """An operator endpoint: events are only turned into messages when someone listens. It is
    deleted afterwards: an operator endpoint receives every event, and one whose receiver has
    stopped would hold up other tests' deliveries."""
    created = await client.post("/admin/v1/webhooks", json={"url": receiver.url()},
                                headers=admin_headers)
    assert created.status_code == 201, created.text
    endpoint_id: str = created.json()["id"]
    yield endpoint_id
    deleted = await client.delete(f"/admin/v1/webhooks/{endpoint_id}", headers=admin_headers)
    assert deleted.status_code == 200, deleted.text


async def test_an_event_that_cannot_be_delivered_is_parked_and_the_others_still_go_out(
    client, admin_headers, settings, sessions, receiver, endpoint
):
    # given an operator endpoint, and two events waiting: one whose data no longer fits its
    # webhook shape (an emitter's bug), one fine
    broken = await _event(sessions, "payment.settled", {"paymentId": "pay_x"})
    fine = await _event(sessions, "webhook.test", _test_data(endpoint, "hello"))

    async with running_actors(settings) as run:
        # when the fan-out meets the broken one, as often as the sweeper would re-drive it
        for _ in range(LIMIT):
            await run(fan_out, broken, retries=0)
        parked = await _attention(client, admin_headers, ref=broken, status="open")
        # and the sweeper runs again afterwards
        await run(sweep, retries=0)
        again = await _attention(client, admin_headers, kind="webhook_event")
        again = [i for i in again if i["ref"] in (broken, fine)]
        messages_for_fine = await _messages_for(sessions, fine)

    # then the broken event is parked once with its id and the error, never dispatched, and
    # the good one went out
    assert [(i["ref"], i["attempts"], i["status"]) for i in parked] == [(broken, LIMIT, "open")]
    assert "does not fit its webhook shape" in parked[0]["error"]
    assert parked[0]["actor"] == "webhook_fan_out"
    assert [(i["ref"], i["attempts"]) for i in again] == [(broken, LIMIT)]
    assert await _dispatched(sessions, broken) is False
    assert [m.endpoint_id for m in messages_for_fine] == [endpoint]


async def test_a_key_that_cannot_be_expired_is_parked_while_the_others_expire(
    client, admin_headers, settings, sessions
):
    # given two short-lived keys of one agent, one of which a hand edit broke (an unknown kind)
    agent = await register_agent(client)
    keys = []
    for label in ("good", "broken"):
        created = await client.post(
            "/v1/api-keys", json={"label": label, "expiresAt": rfc3339_in(1)},
            headers=key_headers(agent["apiKey"]))
        assert created.status_code == 201, created.text
        keys.append(created.json())
    good, broken = keys
    _PLANTED.append(broken["id"])
    async with sessions() as session:
        await session.execute(update(ApiKey).where(col(ApiKey.id) == broken["id"])
                              .values(kind="bogus"))
        await session.commit()
    await asyncio.sleep(1.2)  # past both keys' expiry

    async with running_actors(settings) as run:
        # when the expiry job runs more often than the limit
        for _ in range(LIMIT + 1):
            await run(expire_keys, retries=0)

    # then the good key expired, the broken one is parked (counted only up to the limit)
    good_now = await client.get(f"/admin/v1/keys/{good['id']}", headers=admin_headers)
    items = await _attention(client, admin_headers, ref=broken["id"])
    assert good_now.json()["status"] == "expired"
    assert [(i["ref"], i["status"], i["attempts"]) for i in items] == [
        (broken["id"], "open", LIMIT)]


async def test_an_operator_retries_parked_work_after_fixing_it_and_it_goes_through(
    client, admin_headers, settings, sessions, receiver, endpoint
):
    # given an event parked after failing the limit
    endpoint_id = endpoint
    event_id = await _event(sessions, "webhook.test", {"endpointId": endpoint_id})  # no sentAt
    async with running_actors(settings) as run:
        for _ in range(LIMIT):
            await run(fan_out, event_id, retries=0)
        [item] = await _attention(client, admin_headers, ref=event_id, status="open")

        # when the operator fixes the row and retries it
        async with sessions() as session:
            await session.execute(update(Event).where(col(Event.id) == event_id).values(
                data=_test_data(endpoint_id, "fixed")))
            await session.commit()
        retried = await client.post(f"/admin/v1/attention/{item['id']}/retry",
                                    json={"reason": "fixed the emitter's data"},
                                    headers=admin_headers)
        await run(sweep, retries=0)
        for message in await _messages_for(sessions, event_id):
            await run(deliver, message.id, retries=0)
        audit = await client.get("/admin/v1/audit-log",
                                 params={"action": "attention.retry", "targetId": item["id"]},
                                 headers=admin_headers)

    # then the sweeper took it again and it was delivered; the retry is audited
    assert retried.status_code == 200, retried.text
    assert retried.json()["status"] == "retried"
    assert await _dispatched(sessions, event_id) is True
    assert [json.loads(r.body)["data"]["message"] for r in receiver.hits("/hook")] == ["fixed"]
    assert audit.status_code == 200, audit.text
    assert [e["targetId"] for e in audit.json()["data"]] == [item["id"]]


async def test_an_operator_dismisses_parked_work_and_it_stays_parked(
    client, admin_headers, settings, sessions, endpoint
):
    # given a parked event
    event_id = await _event(sessions, "payment.failed", {})
    async with running_actors(settings) as run:
        for _ in range(LIMIT):
            await run(fan_out, event_id, retries=0)
        [item] = await _attention(client, admin_headers, ref=event_id)

        # when the operator dismisses it, then tries to dismiss it again
        dismissed = await client.post(f"/admin/v1/attention/{item['id']}/dismiss",
                                      headers=admin_headers)
        twice = await client.post(f"/admin/v1/attention/{item['id']}/dismiss",
                                  headers=admin_headers)
        await run(sweep, retries=0)

    # then it is acknowledged, still never dispatched, and a second dismissal is a conflict
    assert dismissed.status_code == 200, dismissed.text
    assert dismissed.json()["status"] == "dismissed"
    assert twice.status_code == 409
    assert twice.json()["code"] == "CONFLICT"
    assert await _dispatched(sessions, event_id) is False


async def test_failures_below_the_limit_keep_the_work_retrying(
    client, admin_headers, settings, sessions, endpoint
):
    # given an event that fails once
    event_id = await _event(sessions, "payment.failed", {})
    async with running_actors(settings) as run:
        await run(fan_out, event_id, retries=0)
        items = await _attention(client, admin_headers, ref=event_id)
        retry = await client.post(f"/admin/v1/attention/{items[0]['id']}/retry",
                                  headers=admin_headers)

    # then it is listed as retrying, not parked, and there is nothing to release yet
    assert [(i["ref"], i["status"], i["attempts"]) for i in items] == [
        (event_id, "retrying", 1)]
    assert retry.status_code == 409


@pytest.mark.parametrize(("params", "status"), [
    ({"kind": "bogus"}, 400), ({"status": "bogus"}, 400), ({"limit": "0"}, 400)])
async def test_the_attention_list_refuses_unknown_filters(client, admin_headers, params, status):
    response = await client.get("/admin/v1/attention", params=params, headers=admin_headers)

    assert response.status_code == status
    assert response.json()["code"] == "VALIDATION_ERROR"


async def test_the_attention_list_is_for_operators_only(client):
    agent = await register_agent(client)

    anonymous = await client.get("/admin/v1/attention")
    as_agent = await client.get("/admin/v1/attention", headers=key_headers(agent["apiKey"]))
    unknown = await client.post("/admin/v1/attention/att_nope/retry",
                                headers={"Authorization": "Bearer nope"})

    assert anonymous.status_code == 401
    assert as_agent.status_code == 401
    assert unknown.status_code == 401


async def test_an_unknown_attention_item_is_not_found(client, admin_headers):
    response = await client.get("/admin/v1/attention/att_missing", headers=admin_headers)

    assert response.status_code == 404
    assert response.json()["code"] == "NOT_FOUND"


async def test_a_secret_in_an_error_never_reaches_the_attention_list(
    client, admin_headers, settings, sessions
):
    # given a parked item whose error text carried a key and a signature
    from app.attention.service import record_failure

    _PLANTED.append("evt_secret")
    secret = "ak_" + "A" * 30
    signature = "0x" + "ab" * 65
    for _ in range(LIMIT):
        await record_failure(sessions, "webhook_event", "evt_secret",
                             ValueError(f"bad {secret} with {signature}"),
                             actor="test", limit=LIMIT)

    items = await _attention(client, admin_headers, ref="evt_secret")

    assert secret not in items[0]["error"]
    assert signature not in items[0]["error"]
    assert "[redacted]" in items[0]["error"]


async def test_health_says_when_work_waits_for_an_operator(
    client, admin_headers, settings, sessions, endpoint
):
    # given an event parked after failing the limit
    event_id = await _event(sessions, "payment.failed", {})
    async with running_actors(settings) as run:
        for _ in range(LIMIT):
            await run(fan_out, event_id, retries=0)

    # when health is asked
    response = await client.get("/v1/health")

    # then it is degraded and says where to look
    body = response.json()
    assert response.status_code == 503
    assert body["attention"]["byKind"]["webhook_event"] >= 1
    assert any("GET /admin/v1/attention?status=open" in reason for reason in body["reasons"])


async def test_metrics_count_the_work_that_waits_for_an_operator(
    client, admin_headers, settings, sessions, endpoint
):
    # given an event parked after failing the limit
    event_id = await _event(sessions, "payment.failed", {})
    async with running_actors(settings) as run:
        for _ in range(LIMIT):
            await run(fan_out, event_id, retries=0)

    # when Prometheus scrapes
    response = await client.get("/metrics")

    # then the parked item is counted by kind and status, for an alert to fire on
    lines = [line for line in response.text.splitlines()
             if line.startswith("passgate_attention_items{")]
    assert response.status_code == 200
    assert any('kind="webhook_event"' in line and 'status="open"' in line
               and float(line.rsplit(" ", 1)[1]) >= 1 for line in lines), lines
