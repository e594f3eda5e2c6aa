"""Alembic environment: the URL comes from passgate's settings, never from an ini file."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool
from sqlmodel import SQLModel

import app.db.models  # noqa: F401  (registers every table on the metadata)
from app.db.engine import SQLITE_PAGE_SIZE

config = context.config
url = config.get_main_option("sqlalchemy.url")
target_metadata = SQLModel.metadata


def run_offline() -> None:
    context.configure(url=url, target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=target_metadata,
                          render_as_batch=connection.dialect.name == "sqlite")
        with context.begin_transaction():
            context.run_migrations()
        return
    # Never statement parameters in an error message (see app.db.engine).
    engine = create_engine(url or "", poolclass=pool.NullPool, hide_parameters=True)
    with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            # Only takes effect while the file has no tables: see app.db.engine.
            conn.exec_driver_sql(f"PRAGMA page_size={SQLITE_PAGE_SIZE}")
            conn.commit()  # ends the autobegun transaction, else Alembic's would nest in it
        context.configure(connection=conn, target_metadata=target_metadata,
                          render_as_batch=conn.dialect.name == "sqlite")
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
