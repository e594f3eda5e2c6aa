from tests.fixtures.workers import actor_runner

__all__ = ["actor_runner"]
