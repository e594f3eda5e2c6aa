"""Key holder balance."""

from __future__ import annotations

from litestar import Router, get
from litestar.di import Provide
from sqlmodel.ext.asyncio.session import AsyncSession

from app.agents import service as agents
from app.auth.guards import provide_key_holder
from app.auth.principal import Principal
from app.credits.schemas import Balance
from app.keys.scopes import BALANCE_READ


@get("/balance", dependencies={"caller": Provide(provide_key_holder)}, opt={"scope": BALANCE_READ})
async def balance(session: AsyncSession, caller: Principal) -> Balance:
    """Credits and total spent, in micros (and USD for display)."""
    agent = await agents.get(session, caller.agent_id or "")
    return Balance(
        credits_usd=agent.balance_micros / 1_000_000,
        total_spent=agent.spent_micros / 1_000_000,
        creditsMicros=agent.balance_micros,
        spentMicros=agent.spent_micros,
    )


router = Router(path="/v1", route_handlers=[balance], tags=["credits"])
