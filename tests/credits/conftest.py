"""Credits: the ledger under concurrency, and deposits from a real anvil chain."""

from __future__ import annotations

import pytest

from tests.fixtures.apiclient import client, shared_client
from tests.fixtures.chain import chain_client, devchain, devchain_factory
from tests.fixtures.chainapp import chain_env

__all__ = ["chain_client", "chain_env", "client", "devchain", "devchain_factory", "shared_client"]

pytestmark = pytest.mark.chain
