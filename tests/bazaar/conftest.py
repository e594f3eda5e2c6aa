"""Discovery tests: passgate with payments on the session's anvil chain and a settlement
signer (so per-call gateway payments are sold), and one configured provider."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from app.main import create_app
from app.settings import Settings
from chain.devchain import DevChain
from tests.fixtures.paid import chain_settings, pay_to

__all__ = ["pay_to"]

SIGNER = 5  # an anvil account that would pay the gas; nothing is settled in these tests
CONFIGURED = {
    "name": "bzecho", "base_url": "http://127.0.0.1:9/", "price_micros": 2500,
    "description": "test upstream", "model_prices": {"big": 9000},
    "route_prices": {"/v1/chat": 3000},
}


@pytest.fixture
def selling(
    settings_factory: Callable[..., Settings], devchain: DevChain, pay_to: str
) -> Callable[..., Settings]:
    """Settings that sell passes and per-call gateway payments (overrides on top)."""

    def build(**overrides: Any) -> Settings:
        values = chain_settings(devchain, pay_to,
                                chain_signer_private_key=devchain.accounts[SIGNER].private_key)
        values["providers"] = [CONFIGURED]
        values.update(overrides)
        return settings_factory(**values)

    return build


@pytest.fixture
def bazaar_settings(selling: Callable[..., Settings]) -> Settings:
    return selling()


@pytest.fixture
async def api(bazaar_settings: Settings) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(app=create_app(bazaar_settings)) as client:
        yield client


@pytest.fixture
def unique_name() -> str:
    """A provider name no other test uses (admin providers stay in the session database)."""
    return f"bz-{uuid.uuid4().hex[:10]}"
