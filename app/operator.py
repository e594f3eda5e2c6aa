"""Operator actions run from the CLI straight against the database (audited as ``system``)."""

from __future__ import annotations

from app.audit.service import Actor, record
from app.credentials.format import KeyKind
from app.db.engine import create_engine, session_factory
from app.keys import service as keys
from app.platforms import service as platforms
from app.settings import Settings

CLI_ACTOR = Actor("system", "cli")


async def create_platform(settings: Settings, name: str) -> tuple[str, str, str]:
    engine = create_engine(settings)
    try:
        async with session_factory(engine)() as session:
            created = await platforms.create(
                session, settings.key_pepper.get_secret_value(), name, "cli"
            )
            await record(session, CLI_ACTOR, "platform.create", "platform", created.platform.id,
                         after={"name": name})
            await session.commit()
            return created.platform.id, created.master.key.id, created.master.secret
    finally:
        await engine.dispose()


async def create_admin_token(settings: Settings, label: str) -> tuple[str, str]:
    engine = create_engine(settings)
    try:
        async with session_factory(engine)() as session:
            issued = await keys.issue(
                session, settings.key_pepper.get_secret_value(), KeyKind.ADMIN, label=label,
                created_by="cli",
            )
            await record(session, CLI_ACTOR, "admin_token.create", "key", issued.key.id,
                         after={"label": label})
            await session.commit()
            return issued.key.id, issued.secret
    finally:
        await engine.dispose()
