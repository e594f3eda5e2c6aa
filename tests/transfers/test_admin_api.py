"""Operator views of the chain: watchers, health, rewinds and their validation."""

from __future__ import annotations

from app.db.types import utcnow
from tests.factories import assert_error
from tests.fixtures.chainapp import ChainEnv, api_client


async def test_watchers_and_health_report_head_cursor_and_lag(
    devchain, settings_factory, admin_headers
):
    from tests.fixtures.chainapp import build_env

    # A funded signer (only its balance is read): without one, health is degraded.
    chain_env = await build_env(
        devchain, settings_factory, chain_signer_private_key=devchain.accounts[0].private_key
    )
    async with chain_env:
        await chain_env.mine()
        await chain_env.watch()
        head = await chain_env.client.block_number()
        async with api_client(chain_env.settings) as client:
            watchers = await client.get("/admin/v1/chain/watchers", headers=admin_headers)
            health = await client.get("/v1/health")
    [watcher] = watchers.json()
    assert watcher["network"] == "local"
    assert watcher["status"] == "ok"
    assert watcher["head"] == head
    assert watcher["cursor"] == head
    assert watcher["lag"] == 0
    assert health.status_code == 200, health.text
    [chain] = health.json()["chains"]
    assert (chain["network"], chain["cursor"], chain["lag"]) == ("local", head, 0)


async def test_health_is_503_once_a_watcher_has_failed_for_too_long(devchain, settings_factory):
    # Given a watcher whose node has been unreachable for longer than the threshold
    from tests.fixtures.chainapp import build_env

    env = await build_env(
        devchain,
        settings_factory,
        chain_unhealthy_after_seconds=60,
        chain_rpc_urls={"local": "http://127.0.0.1:9"},
    )
    async with env, api_client(env.settings) as client:
        await env.watch()
        first = await client.get("/v1/health")
        from app.db.models.transfers import ChainWatcher

        async with env.sessions() as session:
            row = await session.get(ChainWatcher, "local")
            assert row is not None
            assert row.failing_since is not None
            row.failing_since = utcnow().replace(year=2000)
            session.add(row)
            await session.commit()
        later = await client.get("/v1/health")
    # Then it is reported failing, and 503 once that lasted too long
    assert first.json()["chains"][0]["status"] == "failing"
    assert first.json()["chains"][0]["lastError"].startswith("RpcUnavailable")
    assert later.status_code == 503
    assert later.json()["chains"][0]["status"] == "down"


async def test_a_rewind_is_audited_and_validated(chain_env: ChainEnv, admin_headers):
    await chain_env.mine(3)
    await chain_env.watch()
    head = await chain_env.client.block_number()
    async with api_client(chain_env.settings) as client:
        ahead = await client.post(
            "/admin/v1/chain/watchers/local/rewind",
            json={"block": head + 10, "reason": "future"},
            headers=admin_headers,
        )
        unknown = await client.post(
            "/admin/v1/chain/watchers/base/rewind",
            json={"block": 1, "reason": "nope"},
            headers=admin_headers,
        )
        negative = await client.post(
            "/admin/v1/chain/watchers/local/rewind",
            json={"block": -1, "reason": "nope"},
            headers=admin_headers,
        )
        anonymous = await client.post(
            "/admin/v1/chain/watchers/local/rewind", json={"block": 1, "reason": "nope"}
        )
        done = await client.post(
            "/admin/v1/chain/watchers/local/rewind",
            json={"block": head - 1, "reason": "provider missed logs"},
            headers=admin_headers,
        )
        audit = await client.get(
            "/admin/v1/audit-log", params={"action": "chain_watcher.rewind"}, headers=admin_headers
        )
    assert_error(ahead, 400, "VALIDATION_ERROR")
    assert_error(unknown, 404, "NOT_FOUND")
    assert_error(negative, 400, "VALIDATION_ERROR")
    assert_error(anonymous, 401, "UNAUTHORIZED")
    assert done.status_code == 200, done.text
    assert done.json()["previousCursor"] == head
    assert done.json()["watcher"]["cursor"] == head - 2
    entry = audit.json()["data"][0]
    assert entry["before"] == {"cursor": head}
    assert entry["after"]["cursor"] == head - 2
    assert entry["after"]["reason"]


async def test_transfer_filters_are_validated(chain_env: ChainEnv, admin_headers):
    async with api_client(chain_env.settings) as client:
        bad_status = await client.get(
            "/admin/v1/transfers", params={"status": "lost"}, headers=admin_headers
        )
        missing = await client.get("/admin/v1/transfers/trf_nope", headers=admin_headers)
        settlement = await client.get("/admin/v1/settlements/stl_nope", headers=admin_headers)
        assign = await client.post(
            "/admin/v1/transfers/trf_nope/assign",
            json={"agentId": "agt_x", "reason": "nope"},
            headers=admin_headers,
        )
    assert_error(bad_status, 400, "VALIDATION_ERROR")
    assert_error(missing, 404, "NOT_FOUND")
    assert_error(settlement, 404, "NOT_FOUND")
    assert_error(assign, 404, "NOT_FOUND")
