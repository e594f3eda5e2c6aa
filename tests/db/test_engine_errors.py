"""A database error never carries the statement's parameters: they hold signatures and secrets,
and the error's text ends up in tracebacks and logs."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from app.db.engine import create_engine
from app.settings import Settings

SECRET = "0x" + "5e" * 65


async def test_a_failed_statement_does_not_show_its_parameters(database_url):
    # given the app's engine
    engine = create_engine(Settings(database_url=database_url))
    try:
        # when a statement carrying a secret fails in the database
        with pytest.raises(DBAPIError) as failed:
            async with engine.connect() as conn:
                await conn.execute(text("SELECT * FROM no_such_table WHERE x = :x"),
                                   {"x": SECRET})
    finally:
        await engine.dispose()

    # then neither the error nor anything it was raised from names the secret
    assert SECRET not in str(failed.value)
    assert SECRET not in repr(failed.value.__cause__)
