from __future__ import annotations

import pytest

from tests.fixtures.chainapp import chain_env

__all__ = ["chain_env"]

pytestmark = pytest.mark.chain
