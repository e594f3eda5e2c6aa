"""Usage-priced (upto) gateway calls against a real anvil chain with Permit2 and the proxy."""

from __future__ import annotations

from tests.fixtures.api import client, shared_client
from tests.fixtures.chainapp import chain_env
from tests.fixtures.paid import paid_client, paid_settings, pay_to
from tests.gateway.conftest import upstream_url

__all__ = [
    "chain_env", "client", "paid_client",
    "paid_settings", "pay_to", "shared_client", "upstream_url",
]
