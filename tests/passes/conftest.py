"""Buying passes against a real anvil chain, and reading what was bought."""

from __future__ import annotations

from tests.fixtures.api import client, shared_client
from tests.fixtures.paid import paid_client, paid_settings, pay_to

__all__ = [
    "client", "paid_client", "paid_settings",
    "pay_to", "shared_client",
]
