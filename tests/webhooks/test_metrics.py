"""Webhook attempts by outcome and delivery latency, as the API process's /metrics shows them
(the worker runs in the same process here, as in the one-box mode: one registry)."""

from __future__ import annotations

from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.fixtures.webhook_receiver import Receiver, Reply
from tests.scrape import scrape
from tests.webhooks.conftest import (
    WorkerHarness,
    create_endpoint,
    deliveries,
    new_platform,
    wait_for,
)
from tests.webhooks.test_delivery import TEST_ONLY, send_test

ATTEMPTS = "passgate_webhook_attempts_total"
ATTEMPT_COUNT = "passgate_webhook_attempt_duration_seconds_count"
DELIVERED_COUNT = "passgate_webhook_delivery_seconds_count"


async def _message_status(api: AsyncTestClient[Litestar], key: str, endpoint_id: str,
                          message_id: str) -> str:
    rows = await deliveries(api, key, endpoint_id)
    return str(next(r for r in rows if r["id"] == message_id)["status"])


async def test_a_delivered_webhook_counts_one_successful_attempt_and_its_latency(
    api: AsyncTestClient[Litestar], admin_headers: dict[str, str], receiver: Receiver,
    worker: WorkerHarness,
) -> None:
    # Given an endpoint that answers 200, and the counts before
    receiver.routes["/ok"] = Reply(200)
    platform = await new_platform(api, admin_headers)
    endpoint = await create_endpoint(api, platform["key"], receiver.url("/ok"), **TEST_ONLY)
    before = await scrape(api)

    # When a test event is delivered to it
    message_id = await send_test(api, platform["key"], endpoint["id"])

    async def delivered() -> bool:
        status = await _message_status(api, platform["key"], endpoint["id"], message_id)
        return status == "delivered"

    await wait_for(delivered, what="the delivery")

    # Then one successful attempt and one delivery latency were observed
    after = await scrape(api)
    assert after.value(ATTEMPTS, outcome="success") == before.value(ATTEMPTS, outcome="success") + 1
    assert after.value(ATTEMPT_COUNT, outcome="success") == \
        before.value(ATTEMPT_COUNT, outcome="success") + 1
    assert after.value(DELIVERED_COUNT) == before.value(DELIVERED_COUNT) + 1


async def test_a_receiver_answering_500_counts_each_attempt_as_an_http_failure(
    api: AsyncTestClient[Litestar], admin_headers: dict[str, str], receiver: Receiver,
    worker: WorkerHarness,
) -> None:
    # Given an endpoint that always answers 500 (two retries in the test schedule)
    receiver.routes["/down"] = Reply(500)
    platform = await new_platform(api, admin_headers)
    endpoint = await create_endpoint(api, platform["key"], receiver.url("/down"), **TEST_ONLY)
    before = await scrape(api)

    # When a test event is sent and given up after its attempts
    message_id = await send_test(api, platform["key"], endpoint["id"])

    async def failed() -> bool:
        status = await _message_status(api, platform["key"], endpoint["id"], message_id)
        return status == "failed"

    await wait_for(failed, what="the message to fail")

    # Then its three attempts count as http failures, and nothing as delivered
    after = await scrape(api)
    assert after.value(ATTEMPTS, outcome="http") == before.value(ATTEMPTS, outcome="http") + 3
    assert after.value(ATTEMPTS, outcome="success") == before.value(ATTEMPTS, outcome="success")
    assert after.value(DELIVERED_COUNT) == before.value(DELIVERED_COUNT)
