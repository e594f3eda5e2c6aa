"""The operator's credit of an unmatched deposit (``/admin/v1/transfers/{id}/assign``)."""

from __future__ import annotations

from litestar import Router, post

from app.audit.service import Actor
from app.auth.guards import ADMIN
from app.credits import deposits
from app.credits.schemas import AssignBody
from app.db.uow import UnitOfWork
from app.transfers.schemas import TransferView, transfer_view


@post("/transfers/{transfer_id:str}/assign", status_code=200, errors=(409,))
async def assign_transfer(
    session: UnitOfWork, actor: Actor, transfer_id: str, data: AssignBody,
) -> TransferView:
    """Credit an unmatched deposit to an agent (e.g. its wallet was linked after it paid)."""
    return transfer_view(
        await deposits.assign(session, actor, transfer_id, data.agent_id, data.reason)
    )


router = Router(
    path="/admin/v1",
    route_handlers=[assign_transfer],
    before_request=ADMIN,
    tags=["admin", "chain"],
)
