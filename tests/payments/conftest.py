"""Paid routes against a real anvil chain: the app is configured for the session dev chain."""

from __future__ import annotations

from tests.fixtures.paid import chain_settings, paid_client, paid_settings, pay_to

__all__ = [
    "chain_settings", "paid_client",
    "paid_settings", "pay_to",
]
