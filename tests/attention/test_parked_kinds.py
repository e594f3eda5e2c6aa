"""Each kind of parked webhook work on its own: a message that cannot be sent, and an event
whose fan-out hits an integrity violation. The real actors run on a worker in this process;
one row is broken the way a hand edit would, and an operator's view is the admin API."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import delete, update
from sqlmodel import col

from app.db.engine import create_engine, session_factory
from app.db.models.attention import AttentionItem
from app.db.models.events import Event
from app.db.models.webhooks import WebhookEndpoint, WebhookMessage
from app.db.types import utcnow
from tests.fixtures.webhook_receiver import Receiver, Reply
from tests.fixtures.workers import running_actors
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


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    server = await Receiver({"/good": Reply(200), "/broken": Reply(200)}).start()
    try:
        yield server
    finally:
        await server.stop()


Endpoint = Callable[[str], Awaitable[dict[str, Any]]]


@pytest.fixture
async def endpoint(client, admin_headers, receiver) -> AsyncIterator[Endpoint]:
    """Operator endpoints on the receiver's paths, deleted afterwards (an operator endpoint
    receives every later event: a broken one must not outlive its test)."""
    made: list[str] = []

    async def make(path: str) -> dict[str, Any]:
        created = await client.post("/admin/v1/webhooks", json={"url": receiver.url(path)},
                                    headers=admin_headers)
        assert created.status_code == 201, created.text
        made.append(created.json()["id"])
        found: dict[str, Any] = created.json()
        return found

    yield make
    for endpoint_id in made:
        deleted = await client.delete(f"/admin/v1/webhooks/{endpoint_id}",
                                      headers=admin_headers)
        assert deleted.status_code == 200, deleted.text


_PARKED: list[str] = []


@pytest.fixture(autouse=True)
async def forget_parked(sessions) -> AsyncIterator[None]:
    """Parked items of this file's refs go with their test (health reads every open one)."""
    yield
    async with sessions() as session:
        await session.execute(delete(AttentionItem).where(col(AttentionItem.ref).in_(_PARKED)))
        await session.commit()
    _PARKED.clear()


async def _attention(client, admin_headers, **params: str) -> list[dict[str, Any]]:
    response = await client.get("/admin/v1/attention", params=params, headers=admin_headers)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["data"]
    return items


async def _send_test(client, admin_headers, endpoint_id: str) -> dict[str, Any]:
    sent = await client.post(f"/admin/v1/webhooks/{endpoint_id}/test", headers=admin_headers)
    assert sent.status_code == 202, sent.text
    body: dict[str, Any] = sent.json()
    return body


async def _message(client, admin_headers, message_id: str) -> dict[str, Any]:
    response = await client.get(f"/admin/v1/webhooks/messages/{message_id}",
                                headers=admin_headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_a_message_whose_endpoint_secret_does_not_open_is_parked_and_others_go_out(
    client, admin_headers, settings, sessions, receiver, endpoint
):
    # given two endpoints with a test message each, one endpoint's stored secret mangled by a
    # hand edit (it no longer opens, so its messages cannot be signed)
    good, broken = await endpoint("/good"), await endpoint("/broken")
    to_good = await _send_test(client, admin_headers, good["id"])
    to_broken = await _send_test(client, admin_headers, broken["id"])
    _PARKED.append(to_broken["messageId"])
    async with sessions() as session:
        await session.execute(update(WebhookEndpoint)
                              .where(col(WebhookEndpoint.id) == broken["id"])
                              .values(secret_sealed="v1.AAAA"))
        await session.commit()

    async with running_actors(settings) as run:
        # when its deliver job runs more often than the limit, the sweeper between runs, and
        # the other message's job runs too
        for _ in range(LIMIT + 2):
            await run(deliver, to_broken["messageId"], retries=0)
            await run(sweep, retries=0)
        await run(deliver, to_good["messageId"], retries=0)
        items = await _attention(client, admin_headers, ref=to_broken["messageId"])
        broken_message = await _message(client, admin_headers, to_broken["messageId"])
        good_message = await _message(client, admin_headers, to_good["messageId"])

    # then the broken one is parked after the limit (counted no further) with the deliver
    # actor and the reason, it was never sent and is still there to retry; the other went out
    assert [(i["kind"], i["status"], i["attempts"], i["actor"]) for i in items] == [
        ("webhook_message", "open", LIMIT, "deliver")]
    assert "cannot be opened" in items[0]["error"]
    assert broken_message["status"] == "pending"
    assert receiver.hits("/broken") == []
    assert good_message["status"] == "delivered"
    assert [json.loads(hit.body)["type"] for hit in receiver.hits("/good")] == ["webhook.test"]


async def _undispatch(sessions, event_id: str, dispatched: bool) -> None:
    async with sessions() as session:
        await session.execute(update(Event).where(col(Event.id) == event_id)
                              .values(dispatched_at=utcnow() if dispatched else None))
        await session.commit()


async def _without_messages(sessions, event_id: str) -> None:
    """An event waiting for its fan-out, as if it had just been emitted."""
    async with sessions() as session:
        await session.execute(delete(WebhookMessage)
                              .where(col(WebhookMessage.event_id) == event_id))
        await session.execute(update(Event).where(col(Event.id) == event_id)
                              .values(dispatched_at=None))
        await session.commit()


async def test_an_event_whose_fan_out_violates_a_unique_constraint_is_parked(
    client, admin_headers, settings, sessions, receiver, endpoint
):
    # given an endpoint with a delivered test message whose event a hand edit marked as not
    # dispatched (its message to that endpoint still exists: writing it again violates a
    # unique constraint), and another event waiting for its fan-out
    target = await endpoint("/good")
    first = await _send_test(client, admin_headers, target["id"])
    other = await _send_test(client, admin_headers, target["id"])
    broken_event = first["eventId"]
    _PARKED.append(broken_event)
    async with running_actors(settings) as run:
        await run(deliver, first["messageId"], retries=0)
        await _undispatch(sessions, broken_event, dispatched=False)
        await _without_messages(sessions, other["eventId"])
        try:
            # when the fan-out meets it more often than the limit, the sweeper between runs
            for _ in range(LIMIT + 1):
                await run(fan_out, broken_event, retries=0)
                await run(sweep, retries=0)
            items = await _attention(client, admin_headers, ref=broken_event)
            first_message = await _message(client, admin_headers, first["messageId"])
            listed = await client.get(f"/admin/v1/webhooks/{target['id']}/deliveries",
                                      headers=admin_headers)
            messages = {m["eventId"]: m["id"] for m in listed.json()["data"]}
            await run(deliver, messages[other["eventId"]], retries=0)
        finally:
            # a parked event left undispatched would be re-driven once its item is gone
            await _undispatch(sessions, broken_event, dispatched=True)

    # then it is parked after the limit with the integrity error, its one message was sent
    # once; the other event was fanned out and delivered
    assert [(i["kind"], i["status"], i["attempts"]) for i in items] == [
        ("webhook_event", "open", LIMIT)]
    assert items[0]["errorType"] == "sqlalchemy.exc.IntegrityError"
    assert first_message["status"] == "delivered"
    assert len(first_message["attempts"]) == 1
    assert sorted(messages) == sorted([broken_event, other["eventId"]])
    assert len(receiver.hits("/good")) == 2
