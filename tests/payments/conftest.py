"""Paid routes against a real anvil chain: the app is configured for the session dev chain."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from eth_account import Account
from litestar import Litestar
from litestar.testing import AsyncTestClient

from app.main import create_app
from app.settings import Settings
from chain.devchain import DevChain
from tests.fixtures.chain import chain_client, devchain, devchain_factory

__all__ = ["chain_client", "devchain", "devchain_factory"]


def chain_settings(chain: DevChain, pay_to: str, **extra: Any) -> dict[str, Any]:
    return {
        "chain_rpc_urls": {"local": chain.rpc_url},
        "chain_local_chain_id": chain.chain_id,
        "chain_local_usdc_address": chain.token_address,
        "chain_pay_to_address": pay_to,
        "chain_deposit_address": Account.create().address,
        **extra,
    }


@pytest.fixture
def pay_to() -> str:
    # A fresh receiving address per test: the session chain is shared.
    return str(Account.create().address)


@pytest.fixture
def paid_settings(
    settings_factory: Callable[..., Settings], devchain: DevChain, pay_to: str
) -> Settings:
    return settings_factory(**chain_settings(devchain, pay_to, settle_wait=5.0))


@pytest.fixture
async def paid_client(paid_settings: Settings) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(app=create_app(paid_settings)) as client:
        yield client
