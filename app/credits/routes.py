"""Key holder balance."""

from __future__ import annotations

from litestar import Router, get

from app.agents import service as agents
from app.auth.guards import AnyRequest, key_holder, principal_of
from app.credentials.scopes import BALANCE_READ
from app.credits.schemas import Balance
from app.db.uow import UnitOfWork


@get("/balance", before_request=key_holder(BALANCE_READ))
async def balance(request: AnyRequest, session: UnitOfWork) -> Balance:
    """Credits and total spent, in micros (and USD for display)."""
    caller = principal_of(request)
    agent = await agents.get(session, caller.agent_id or "")
    return Balance(
        credits_usd=agent.balance_micros / 1_000_000,
        total_spent=agent.spent_micros / 1_000_000,
        creditsMicros=agent.balance_micros,
        spentMicros=agent.spent_micros,
    )


router = Router(path="/v1", route_handlers=[balance], tags=["credits"])
