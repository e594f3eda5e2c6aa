"""The migrations build exactly the schema the models describe, on both backends."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, text

import app.db.models as models
from app.db import migrate
from app.db.migrate import alembic_config
from app.settings import Settings
from tests.fixtures.onebox import fresh_database


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


def _kinds(url: str) -> dict[str, str]:
    engine = create_engine(Settings(database_url=url).sync_database_url())
    try:
        with engine.connect() as conn:
            return dict(conn.execute(text("SELECT ref, kind FROM attention_items")).all())
    finally:
        engine.dispose()


def test_parked_leases_move_to_their_own_kind_and_back(database_url, tmp_path):
    kind = "sqlite" if database_url.startswith("sqlite") else "postgres"
    with fresh_database(kind, tmp_path) as url:
        # given a database before 0018 where a lease and a reservation were parked alike
        settings = Settings(database_url=url)
        migrate.upgrade(settings, "0017_kept_results_index")
        engine = create_engine(settings.sync_database_url())
        try:
            with engine.begin() as conn:
                for ref in ("lse_01PARKED", "use_01PARKED"):
                    conn.execute(text(
                        "INSERT INTO attention_items (id, kind, ref, actor, status, attempts, "
                        "error_type, error, first_failed_at, last_failed_at) VALUES (:id, "
                        "'gateway_reservation', :ref, 'gateway_release_stale', 'open', 3, 'E', "
                        "'e', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"),
                        {"id": "att_" + ref, "ref": ref})
        finally:
            engine.dispose()

        # when it is upgraded, the lease is parked under its own kind; the reservation stays
        migrate.upgrade(settings)
        assert _kinds(url) == {"lse_01PARKED": "gateway_lease",
                               "use_01PARKED": "gateway_reservation"}

        # and a downgrade puts it back
        command.downgrade(alembic_config(settings), "0017_kept_results_index")
        assert _kinds(url) == {"lse_01PARKED": "gateway_reservation",
                               "use_01PARKED": "gateway_reservation"}
