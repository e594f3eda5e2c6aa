from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from app.db import migrate
from app.settings import Settings
from tests.fixtures.onebox import fresh_database


@pytest.fixture
def fresh_settings(
    database_url: str, settings_factory: Callable[..., Settings], tmp_path
) -> Iterator[Callable[..., Settings]]:
    """Settings on an empty database of the session's kind: health reads whole tables (the
    oldest open payment, every heartbeat), so nothing another test left may be in them."""
    kind = "sqlite" if database_url.startswith("sqlite") else "postgres"
    with fresh_database(kind, tmp_path) as url:
        migrate.upgrade(Settings(database_url=url))

        def build(**overrides: object) -> Settings:
            return settings_factory(database_url=url, **overrides)

        yield build
