from __future__ import annotations

from tests.fixtures.chain import chain_client, devchain

__all__ = ["chain_client", "devchain"]
