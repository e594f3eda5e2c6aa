"""Work that cannot succeed is logged once with the ids needed to act (issue 14 §2): one ERROR
line when it is parked, naming its kind and ref and no secret, however often the sweepers and
the actor meet it afterwards."""

from __future__ import annotations

import asyncio
import io
import json
import logging.config
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from sqlalchemy import delete, update
from sqlmodel import col

from app.db.engine import create_engine, session_factory
from app.db.models.attention import AttentionItem
from app.db.models.keys import ApiKey
from app.db.models.webhooks import WebhookEndpoint
from app.logs.configure import logging_config
from app.logs.handlers import flush_all
from app.settings import Settings
from tests.factories import key_headers, register_agent, rfc3339_in
from tests.fixtures.webhook_receiver import Receiver, Reply
from tests.fixtures.workers import running_actors
from workers.expiry import expire_keys
from workers.webhooks import deliver, sweep

LIMIT = 3
# How often the work is met after it was parked: every sweeper run and re-sent job.
AFTER_PARKED = 3


@pytest.fixture
def settings(settings_factory):
    return settings_factory(job_max_failures=LIMIT, webhook_sweep_grace_seconds=0.0,
                            redis_url="", log_format="json")


@pytest.fixture
async def sessions(settings) -> AsyncIterator[Any]:
    engine = create_engine(settings)
    try:
        yield session_factory(engine)
    finally:
        await engine.dispose()


@pytest.fixture
def log_lines(settings: Settings) -> Iterator[io.StringIO]:
    """What every passgate logger writes while the test runs, as the processes would."""
    stream = io.StringIO()
    logging.config.dictConfig(logging_config(settings, stream))
    yield stream
    flush_all()
    logging.config.dictConfig(logging_config(Settings()))


def _lines(stream: io.StringIO) -> list[dict[str, Any]]:
    flush_all()
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def _errors_naming(lines: list[dict[str, Any]], ref: str) -> list[dict[str, Any]]:
    return [line for line in lines
            if line["level"] in ("ERROR", "CRITICAL") and ref in json.dumps(line)]


async def _attention(client, admin_headers, ref: str) -> list[dict[str, Any]]:
    response = await client.get("/admin/v1/attention", params={"ref": ref},
                                headers=admin_headers)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["data"]
    return items


async def test_a_key_that_cannot_be_expired_is_logged_at_error_once_however_often_expiry_runs(
    client, admin_headers, settings, sessions, log_lines
):
    # given a short-lived key a hand edit broke (an unknown kind)
    agent = await register_agent(client)
    created = await client.post("/v1/api-keys",
                                json={"label": "broken", "expiresAt": rfc3339_in(1)},
                                headers=key_headers(agent["apiKey"]))
    assert created.status_code == 201, created.text
    key = created.json()
    async with sessions() as session:
        await session.execute(update(ApiKey).where(col(ApiKey.id) == key["id"])
                              .values(kind="bogus"))
        await session.commit()
    await asyncio.sleep(1.2)  # past its expiry

    try:
        async with running_actors(settings) as run:
            # when the expiry job fails on it up to the limit, then keeps running
            for _ in range(LIMIT + AFTER_PARKED):
                await run(expire_keys, retries=0)
        [item] = await _attention(client, admin_headers, key["id"])
        lines = _lines(log_lines)
    finally:
        async with sessions() as session:
            await session.execute(update(ApiKey).where(col(ApiKey.id) == key["id"])
                                  .values(kind="pk", status="expired"))
            await session.execute(delete(AttentionItem)
                                  .where(col(AttentionItem.ref) == key["id"]))
            await session.commit()

    # then it is parked, and exactly one ERROR line names it: its kind, its id, the attention
    # item to act on; the earlier failures are warnings; no secret is in any line
    assert (item["kind"], item["status"], item["attempts"]) == ("key_expiry", "open", LIMIT)
    [error] = _errors_naming(lines, key["id"])
    assert "key_expiry" in error["message"]
    assert item["id"] in error["message"]
    warnings = [line for line in lines
                if line["level"] == "WARNING" and key["id"] in line["message"]]
    assert len(warnings) == LIMIT - 1
    text = json.dumps(lines)
    assert key["key"] not in text
    assert agent["apiKey"] not in text


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    server = await Receiver({"/hook": Reply(200)}).start()
    try:
        yield server
    finally:
        await server.stop()


async def test_a_message_that_cannot_be_sent_is_logged_at_error_once_however_often_it_is_met(
    client, admin_headers, settings, sessions, receiver, log_lines
):
    # given an operator endpoint whose stored secret was mangled (it no longer opens), and a
    # test message to it
    created = await client.post("/admin/v1/webhooks", json={"url": receiver.url()},
                                headers=admin_headers)
    assert created.status_code == 201, created.text
    endpoint = created.json()
    sent = await client.post(f"/admin/v1/webhooks/{endpoint['id']}/test",
                             headers=admin_headers)
    assert sent.status_code == 202, sent.text
    message_id = sent.json()["messageId"]
    async with sessions() as session:
        await session.execute(update(WebhookEndpoint)
                              .where(col(WebhookEndpoint.id) == endpoint["id"])
                              .values(secret_sealed="v1.AAAA"))
        await session.commit()

    try:
        async with running_actors(settings) as run:
            # when its deliver job fails, retried by Dramatiq more often than the limit, then
            # the job is sent again and the sweeper runs
            await run(deliver, message_id, retries=LIMIT + AFTER_PARKED, backoff_ms=20)
            counted = await _attention(client, admin_headers, message_id)
            for _ in range(AFTER_PARKED):
                await run(deliver, message_id, retries=0)
                await run(sweep, retries=0)
        [item] = await _attention(client, admin_headers, message_id)
        lines = _lines(log_lines)
    finally:
        deleted = await client.delete(f"/admin/v1/webhooks/{endpoint['id']}",
                                      headers=admin_headers)
        assert deleted.status_code == 200, deleted.text
        async with sessions() as session:
            await session.execute(delete(AttentionItem)
                                  .where(col(AttentionItem.ref) == message_id))
            await session.commit()

    # then Dramatiq's retries stopped once it was parked, after the limit; exactly one ERROR
    # line names it, with its kind and the item
    assert [(i["status"], i["attempts"]) for i in counted] == [("open", LIMIT)]
    assert (item["kind"], item["status"], item["attempts"]) == ("webhook_message", "open",
                                                                LIMIT)
    [error] = _errors_naming(lines, message_id)
    assert "webhook_message" in error["message"]
    assert item["id"] in error["message"]
    assert endpoint["secret"] not in json.dumps(lines)
