"""Sign-in-with-x against a running passgate (uvicorn + in-process worker) on anvil, with a
gateway provider: ``PASSGATE_PUBLIC_URL`` is the served origin, as SIWX domain binding needs."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from eth_account import Account

from app.settings import Settings
from chain.devchain import DevChain
from tests.conftest import ADMIN_TOKEN, SettingsFactory
from tests.fixtures.paid import chain_settings
from tests.gateway.conftest import upstream_url
from tests.gateway.helpers import provider_config
from workers.demo.server import embedded_service, free_port

__all__ = ["upstream_url"]

SIGNER = 5  # the anvil account paying the settlement gas for this module's server


@dataclass(frozen=True)
class Served:
    url: str
    pay_to: str
    settings: Settings

    @property
    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture(scope="module")
def served(
    settings_factory: SettingsFactory, devchain: DevChain, upstream_url: str
) -> Iterator[Served]:
    port = free_port()
    pay_to = Account.create().address
    settings = settings_factory(
        redis_url="", port=port, public_url=f"http://127.0.0.1:{port}",
        providers=[provider_config(upstream_url)], plan_free_per_minute=100_000,
        **chain_settings(devchain, pay_to, settle_wait=20.0,
                         chain_signer_private_key=devchain.accounts[SIGNER].private_key),
    )
    with embedded_service(settings) as base:
        yield Served(url=base, pay_to=pay_to, settings=settings)
