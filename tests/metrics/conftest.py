from tests.fixtures.api import client, make_client, shared_client

__all__ = ["client", "make_client", "shared_client"]
