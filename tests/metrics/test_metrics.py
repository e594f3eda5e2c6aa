"""GET /metrics: HTTP requests by route template, rate-limit refusals, the optional token."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from app.health.metrics_state import QUEUES
from tests.conftest import delete_prefixed_keys
from tests.factories import assert_error, bearer, create_key, key_headers, register_agent
from tests.scrape import scrape

REQUESTS = "passgate_http_requests_total"
DURATION_COUNT = "passgate_http_request_duration_seconds_count"


async def test_a_keyed_request_counts_under_its_route_template_and_status(client):
    # Given an agent with a second key, and the counts before
    agent = await register_agent(client)
    extra = await create_key(client, agent["apiKey"])
    route = {"method": "DELETE", "route": "/v1/api-keys/{key_id}", "status": "200"}
    before = await scrape(client)

    # When the agent revokes that key by id
    response = await client.delete(f"/v1/api-keys/{extra['id']}",
                                   headers=key_headers(agent["apiKey"]))

    # Then the template's counter and latency histogram moved by one, and no raw path shows
    assert response.status_code == 200, response.text
    after = await scrape(client)
    assert after.value(REQUESTS, **route) == before.value(REQUESTS, **route) + 1
    assert after.value(DURATION_COUNT, **route) == before.value(DURATION_COUNT, **route) + 1
    assert extra["id"] not in after.text


async def test_a_request_no_route_matches_counts_as_unmatched_without_its_path(client):
    # Given the counts before
    labels = {"method": "GET", "route": "unmatched", "status": "404"}
    before = await scrape(client)

    # When a path that matches no route is asked for
    secret_path = "/v1/no-such-route/clm_" + "x" * 24
    response = await client.get(secret_path)

    # Then it is counted as unmatched, and the path appears nowhere
    assert_error(response, 404, "NOT_FOUND")
    after = await scrape(client)
    assert after.value(REQUESTS, **labels) == before.value(REQUESTS, **labels) + 1
    assert secret_path not in after.text


async def test_a_made_up_method_is_counted_as_other(client):
    # Given the counts before
    before = await scrape(client)

    # When a request uses a method HTTP does not define
    await client.request("BREW", "/v1/health/live")

    # Then it counts under OTHER, never under the caller's word (a route refusing the method
    # is not a match: the 405 comes from routing)
    after = await scrape(client)
    labels = {"method": "OTHER", "route": "unmatched", "status": "405"}
    assert after.value(REQUESTS, **labels) == before.value(REQUESTS, **labels) + 1
    assert "BREW" not in after.text


@pytest.fixture
async def away_from_a_minute_boundary():
    left = 60 - time.time() % 60
    if left < 2:
        await asyncio.sleep(left + 0.05)


@pytest.mark.usefixtures("away_from_a_minute_boundary")
async def test_a_429_increments_the_rate_limit_refusals(make_client):
    # Given a key whose one request a minute is used
    client = await make_client(plan_free_per_minute=1)
    agent = await register_agent(client)
    assert (await client.get("/v1/api-keys/info", headers=key_headers(agent["apiKey"]))
            ).status_code == 200
    before = await scrape(client)

    # When it asks again
    response = await client.get("/v1/api-keys/info", headers=key_headers(agent["apiKey"]))

    # Then it is refused, and the refusal is counted as the key's limit
    assert_error(response, 429, "RATE_LIMITED")
    after = await scrape(client)
    name = "passgate_rate_limit_refusals_total"
    assert after.value(name, limit="key") == before.value(name, limit="key") + 1
    assert after.value(name, limit="signup") == before.value(name, limit="signup")


async def test_metrics_are_open_without_a_token_setting(client):
    # When anyone asks, without credentials
    response = await client.get("/metrics")

    # Then they get the exposition
    assert response.status_code == 200
    assert "passgate_http_requests_total" in response.text


async def test_with_a_token_setting_metrics_want_that_bearer_token(make_client):
    # Given an API whose metrics are protected
    client = await make_client(metrics_token="metrics-token-0123456789")

    # When asked without the token, with another, and with it
    missing = await client.get("/metrics")
    wrong = await client.get("/metrics", headers=bearer("metrics-token-wrong-value"))
    right = await client.get("/metrics", headers=bearer("metrics-token-0123456789"))

    # Then only the right token gets the exposition; the others a 401 error body
    assert_error(missing, 401, "UNAUTHORIZED")
    assert_error(wrong, 401, "UNAUTHORIZED")
    assert right.status_code == 200
    assert "passgate_http_requests_total" in right.text


async def test_payments_by_status_are_read_from_the_database(client):
    # When scraped (no chain configured, so no payment in any state here)
    result = await scrape(client)

    # Then the database answered and its backlogs are shown
    assert result.value("passgate_state_up", source="database") == 1
    assert result.has("passgate_webhook_messages_pending")
    assert result.has("passgate_settlements_open")
    assert result.has("passgate_payment_oldest_unsettled_age_seconds")


async def test_queue_depth_shows_the_jobs_waiting_in_redis(make_client, settings_factory):
    # Given an API on a Redis namespace of its own, where no worker consumes
    prefix = f"qdepth:{uuid.uuid4().hex[:8]}"
    settings = settings_factory(redis_prefix=prefix, metrics_cache_seconds=0)
    client = await make_client(settings)
    try:
        before = await scrape(client)

        # When an agent registers (its events send one webhook fan-out job)
        await register_agent(client)

        # Then that job waits in the webhooks queue, and the broker answered the scrape
        after = await scrape(client)
    finally:
        delete_prefixed_keys(settings.redis_url, prefix)
    assert before.value("passgate_queue_depth", queue="webhooks") == 0
    assert after.value("passgate_queue_depth", queue="webhooks") == 1
    assert after.value("passgate_state_up", source="broker") == 1
    assert {labels["queue"] for labels in after.series("passgate_queue_depth")} == set(QUEUES)


def test_every_queue_an_actor_consumes_is_measured():
    # Given every actor the worker runs
    from workers.actors import all_actors

    # Then the queue-depth metrics cover exactly their queues
    assert {actor.queue_name for actor in all_actors()} == set(QUEUES)
