"""The migrations build exactly the schema the models describe, on both backends."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine

import app.db.models as models
from app.db.migrate import alembic_config
from app.settings import Settings


def test_the_migration_history_has_a_single_head():
    heads = ScriptDirectory.from_config(alembic_config(Settings())).get_heads()

    assert len(heads) == 1, heads


def test_the_migrated_database_matches_the_models(database_url):
    # given the database the session fixture migrated with the real migrations
    engine = create_engine(Settings(database_url=database_url).sync_database_url())
    try:
        with engine.connect() as conn:
            # when it is compared with the models
            diff = compare_metadata(MigrationContext.configure(conn), models.metadata)
    finally:
        engine.dispose()

    # then nothing is missing or extra (type-only noise of SQLite aside)
    assert diff == [], diff
