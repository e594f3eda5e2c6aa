"""Credits: operator adjustments and the ledger through the HTTP API (tests/fixtures/api.py),
and deposits from a real anvil chain."""

from tests.fixtures.api import client, make_client, other_platform, platform, shared_client
from tests.fixtures.chainapp import chain_env

__all__ = [
    "chain_env", "client", "make_client",
    "other_platform", "platform", "shared_client",
]
