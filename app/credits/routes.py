"""Key holder balance."""

from __future__ import annotations

from litestar import Router, get

from app.auth.guards import key_holder
from app.auth.principal import Principal
from app.credentials.scopes import BALANCE_READ
from app.credits import service as credits
from app.credits.schemas import Balance
from app.db.uow import UnitOfWork


@get("/balance", before_request=key_holder(BALANCE_READ))
async def balance(session: UnitOfWork, principal: Principal) -> Balance:
    """Credits and total spent, in micros (and USD for display)."""
    return await credits.balance(session, principal.agent_id or "")


router = Router(path="/v1", route_handlers=[balance], tags=["credits"])
