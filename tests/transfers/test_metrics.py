"""Chain watchers on /metrics: head, cursor and lag per network, as stored by the watcher."""

from __future__ import annotations

from tests.fixtures.chainapp import api_client, build_env
from tests.scrape import scrape

HEAD = "passgate_chain_head_block"
CURSOR = "passgate_chain_cursor_block"
LAG = "passgate_chain_lag_blocks"


async def test_watcher_head_cursor_and_lag_show_after_a_run_and_follow_a_rewind(
    devchain, settings_factory, admin_headers
):
    # Given a watcher that has never run (states read at every scrape)
    env = await build_env(devchain, settings_factory, metrics_cache_seconds=0)
    async with env, api_client(env.settings) as client:
        never = await scrape(client)

        # When it runs over a few new blocks
        await env.mine(3)
        await env.watch_until_idle()
        ran = await scrape(client)
        head = await env.client.block_number()

        # And an operator rewinds it five blocks
        rewound = await client.post(
            "/admin/v1/chain/watchers/local/rewind",
            json={"block": head - 4, "reason": "metrics test"}, headers=admin_headers,
        )
        assert rewound.status_code == 200, rewound.text
        after_rewind = await scrape(client)

    # Then nothing was shown before the first run, the run's head and cursor after it, and
    # the rewind as five blocks of lag
    assert not never.has(HEAD, network="local")
    assert ran.value(HEAD, network="local") == head
    assert ran.value(CURSOR, network="local") == head
    assert ran.value(LAG, network="local") == 0
    assert after_rewind.value(CURSOR, network="local") == head - 5
    assert after_rewind.value(LAG, network="local") == 5
    assert after_rewind.value("passgate_chain_watcher_failures", network="local") == 0
