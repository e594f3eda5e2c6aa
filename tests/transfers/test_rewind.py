"""A rewind only ever re-scans: it never moves a watcher past blocks it has not scanned.

No chain is needed: the admin API answers a rewind from the stored watcher alone, so the
``local`` network points at a port where nothing listens.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from app.db.engine import create_engine, session_factory
from app.db.models.transfers import ChainWatcher
from app.errors import Conflict, ValidationFailed
from app.main import create_app
from app.settings import Settings
from app.transfers import service
from tests.factories import assert_error
from tests.fixtures.chainapp import clear_chain_tables

NOWHERE = "http://127.0.0.1:9"
REWIND = "/admin/v1/chain/watchers/local/rewind"


@pytest.fixture
def chain_settings(settings_factory: Callable[..., Settings]) -> Settings:
    return settings_factory(chain_rpc_urls={"local": NOWHERE})


@pytest.fixture
async def sessions(chain_settings: Settings) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Sessions on the test database, with the chain tables emptied: this test owns ``local``."""
    engine = create_engine(chain_settings)
    made = session_factory(engine)
    await clear_chain_tables(made)
    try:
        yield made
    finally:
        await engine.dispose()


@pytest.fixture
async def api(
    chain_settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(app=create_app(chain_settings)) as client:
        yield client


async def _store_watcher(
    sessions: async_sessionmaker[AsyncSession], chain_settings: Settings, **state: Any
) -> None:
    chain_id = chain_settings.networks()["local"].chain_id
    async with sessions() as session:
        session.add(ChainWatcher(network="local", chain_id=chain_id, **state))
        await session.commit()


async def _watcher(api: AsyncTestClient[Litestar], admin_headers: dict[str, str]) -> Any:
    response = await api.get("/admin/v1/chain/watchers", headers=admin_headers)
    [watcher] = response.json()
    return watcher


async def _rewind_audits(api: AsyncTestClient[Litestar], admin_headers: dict[str, str]) -> Any:
    response = await api.get("/admin/v1/audit-log", headers=admin_headers,
                             params={"action": "chain_watcher.rewind", "targetId": "local"})
    return response.json()["data"]


async def test_a_watcher_that_never_ran_is_not_rewound_past_its_start_block(api, admin_headers):
    # given a watcher that has never run (no cursor, no head) on the dev chain, which starts
    # at block 0
    audits_before = await _rewind_audits(api, admin_headers)

    # when an operator rewinds it to a block far ahead
    response = await api.post(REWIND, json={"block": 10**12, "reason": "typo"},
                              headers=admin_headers)

    # then it is refused, the watcher still has no cursor, and nothing is audited
    assert_error(response, 400, "VALIDATION_ERROR")
    assert (await _watcher(api, admin_headers))["cursor"] is None
    assert await _rewind_audits(api, admin_headers) == audits_before


async def test_a_configured_start_block_bounds_the_rewind_of_a_watcher_that_never_ran(
    settings_factory, sessions, admin_headers
):
    # given a watcher that has never run, on a network configured to start at block 100
    settings = settings_factory(chain_rpc_urls={"local": NOWHERE},
                                chain_start_blocks={"local": 100})
    async with AsyncTestClient(app=create_app(settings)) as api:
        # when it is rewound past its start block, then to an earlier block
        past = await api.post(REWIND, json={"block": 101, "reason": "ahead"},
                              headers=admin_headers)
        earlier = await api.post(REWIND, json={"block": 90, "reason": "backfill"},
                                 headers=admin_headers)

    # then only the earlier block is taken: the scan starts there
    assert_error(past, 400, "VALIDATION_ERROR")
    assert earlier.status_code == 200, earlier.text
    assert earlier.json()["previousCursor"] is None
    assert earlier.json()["watcher"]["cursor"] == 89


async def test_without_a_start_block_the_stored_head_bounds_the_rewind(
    sessions, chain_settings
):
    # given a watcher with no start block configured: first with nothing stored, then with
    # a head but never a cursor
    chain_id = chain_settings.networks()["local"].chain_id

    # then a rewind is refused while nothing bounds it, and bounded by the head once stored
    async with sessions() as session:
        with pytest.raises(Conflict):
            await service.rewind(session, "local", chain_id, 5, start_block=None)
        await session.rollback()
    await _store_watcher(sessions, chain_settings, head=50)
    async with sessions() as session:
        with pytest.raises(ValidationFailed):
            await service.rewind(session, "local", chain_id, 51, start_block=None)
        await session.rollback()
    async with sessions() as session:
        watcher, previous = await service.rewind(session, "local", chain_id, 50,
                                                 start_block=None)
        await session.commit()
    assert previous is None
    assert watcher.cursor == 49
