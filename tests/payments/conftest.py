"""Paid routes against a real anvil chain: the app is configured for the session dev chain."""

from __future__ import annotations

from tests.fixtures.chain import chain_client, devchain, devchain_factory
from tests.fixtures.paid import chain_settings, paid_client, paid_settings, pay_to

__all__ = [
    "chain_client", "chain_settings", "devchain", "devchain_factory", "paid_client",
    "paid_settings", "pay_to",
]
