from tests.fixtures.api import client, make_client, other_platform, platform, shared_client

__all__ = ["client", "make_client", "other_platform", "platform", "shared_client"]
