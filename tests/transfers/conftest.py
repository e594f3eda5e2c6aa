from __future__ import annotations

import pytest

from tests.fixtures.chain import chain_client, devchain, devchain_factory
from tests.fixtures.chainapp import chain_env

__all__ = ["chain_client", "chain_env", "devchain", "devchain_factory"]

pytestmark = pytest.mark.chain
