"""Run Alembic programmatically (``passgate migrate``)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from app.settings import Settings

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"


def alembic_config(settings: Settings) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("file_template", "%%(rev)s")
    # ConfigParser interpolation would treat a '%' in a password as syntax.
    config.set_main_option("sqlalchemy.url", settings.sync_database_url().replace("%", "%%"))
    return config


def upgrade(settings: Settings, revision: str = "heads") -> None:
    """Upgrade to the latest schema ("heads": correct even while a new branch awaits merge)."""
    command.upgrade(alembic_config(settings), revision)


def revision(settings: Settings, message: str, rev_id: str | None = None,
             head: str = "head", splice: bool = False) -> None:
    """Autogenerate a revision against the database at ``settings.database_url``.

    ``head`` + ``splice`` start a branch from an older revision (the database must be there).
    """
    command.revision(alembic_config(settings), message=message, autogenerate=True,
                     rev_id=rev_id, head=head, splice=splice)
