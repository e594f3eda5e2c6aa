# The root conftest registers tests.fixtures.chain as a plugin; importing the fixtures here
# also makes this package runnable on its own (pytest only honours pytest_plugins at the root).
from tests.fixtures.chain import chain_client, devchain, devchain_factory

__all__ = ["chain_client", "devchain", "devchain_factory"]
