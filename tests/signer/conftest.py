from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from app.settings import Settings
from chain.devchain import DevChain
from tests.fixtures.chain import chain_client, devchain, devchain_factory
from tests.fixtures.chainapp import ChainEnv, build_env

__all__ = ["chain_client", "chain_env", "devchain", "devchain_factory"]

pytestmark = pytest.mark.chain


@pytest.fixture
async def chain_env(
    devchain: DevChain, settings_factory: Callable[..., Settings]
) -> AsyncIterator[ChainEnv]:
    """The session's automining chain, watched by ``local`` with 1 confirmation."""
    env = await build_env(devchain, settings_factory)
    try:
        yield env
    finally:
        await env.close()
