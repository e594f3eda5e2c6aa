"""The SQL of the agents area: agents by id, e-mail, claim code and search, the claim itself,
and an agent's agent key."""

from __future__ import annotations

from sqlalchemy import func, update
from sqlmodel import col, select

from app.credentials.format import KeyKind
from app.db.models.agents import Agent
from app.db.models.keys import ApiKey
from app.db.paging import PageParams
from app.db.queries import get_or_404, page, where_equal
from app.db.types import utcnow
from app.db.uow import UnitOfWork


async def get(session: UnitOfWork, agent_id: str) -> Agent:
    """The agent, or NOT_FOUND."""
    return await get_or_404(session, Agent, agent_id, "Agent")


async def find(session: UnitOfWork, agent_id: str) -> Agent | None:
    return await session.get(Agent, agent_id)


async def email_taken(session: UnitOfWork, email: str) -> bool:
    taken = await session.exec(select(Agent.id).where(col(Agent.email) == email))
    return taken.first() is not None


async def search(
    session: UnitOfWork,
    params: PageParams,
    *,
    platform_id: str | None,
    disabled: bool | None,
    query: str | None,
) -> tuple[list[Agent], str | None]:
    """A page of agents, newest first; ``query`` matches a name (any case) or an exact id."""
    stmt = where_equal(
        select(Agent), (col(Agent.platform_id), platform_id), (col(Agent.disabled), disabled)
    )
    if query is not None:
        pattern = f"%{query.lower()}%"
        stmt = stmt.where(func.lower(col(Agent.name)).like(pattern) | (col(Agent.id) == query))
    return await page(session, stmt, col(Agent.id), params)


async def by_claim_code_hash(session: UnitOfWork, digest: str) -> Agent | None:
    return (await session.exec(select(Agent).where(col(Agent.claim_code_hash) == digest))).first()


async def take_unclaimed(session: UnitOfWork, digest: str, platform_id: str) -> Agent | None:
    """Give the unclaimed agent with this claim code (and its keys) to the platform; None when
    no such agent is left. One conditional UPDATE decides between concurrent claims."""
    claimed = await session.execute(
        update(Agent)
        .where(col(Agent.claim_code_hash) == digest, col(Agent.platform_id).is_(None))
        .values(platform_id=platform_id, claim_code_hash=None, claimed_at=utcnow())
        .returning(col(Agent.id))
    )
    agent_id = claimed.scalar_one_or_none()
    if agent_id is None:
        return None
    await session.execute(
        update(ApiKey).where(col(ApiKey.agent_id) == agent_id).values(platform_id=platform_id)
    )
    # The UPDATEs bypassed any copy this session already holds; read the rows as stored.
    agent = await session.get(Agent, agent_id, populate_existing=True)
    assert agent is not None
    return agent


async def lock(session: UnitOfWork, agent: Agent) -> None:
    """Write the agent row without changing it: PostgreSQL locks it, SQLite takes its single
    write lock, so what follows in this transaction runs one at a time per agent."""
    await session.execute(
        update(Agent).where(col(Agent.id) == agent.id).values(platform_id=agent.platform_id)
    )


async def oldest_active_agent_key(session: UnitOfWork, agent_id: str) -> ApiKey | None:
    """The agent's oldest active agent key (``ak_``)."""
    return (
        await session.exec(
            select(ApiKey)
            .where(col(ApiKey.agent_id) == agent_id, col(ApiKey.kind) == KeyKind.AGENT.value,
                   col(ApiKey.status) == "active")
            .order_by(col(ApiKey.id))
        )
    ).first()
