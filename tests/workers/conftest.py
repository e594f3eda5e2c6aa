from tests.fixtures.chain import chain_client, devchain, devchain_factory
from tests.fixtures.workers import actor_runner

__all__ = ["actor_runner", "chain_client", "devchain", "devchain_factory"]
