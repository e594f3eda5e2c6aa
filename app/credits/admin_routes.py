"""The operator's credit routes under ``/admin/v1`` (admin token): adjustments (audited), the
ledger, and crediting an unmatched deposit to an agent (audited)."""

from __future__ import annotations

from litestar import Router, get, post
from litestar.params import Parameter

from app.audit.service import Actor
from app.auth.guards import ADMIN
from app.credits import deposits
from app.credits import service as credits
from app.credits.schemas import AdjustmentBody, AssignBody, LedgerView, ledger_view
from app.db.paging import Page, page_params
from app.db.uow import UnitOfWork
from app.transfers.schemas import TransferView, transfer_view


@post("/credits/adjustments", status_code=201, errors=(402, 404, 409))
async def adjust_credits(session: UnitOfWork, actor: Actor, data: AdjustmentBody) -> LedgerView:
    """Credit or debit an agent with a reason (never below zero, never past
    ``MAX_BALANCE_MICROS``). Retried with the same ``idempotencyKey`` it answers with the
    first entry; the key reused for another agent or amount is a CONFLICT."""
    entry = await credits.adjust(session, actor, data.agent_id, data.amount_micros, data.reason,
                                 data.idempotency_key)
    return ledger_view(entry)


@get("/credits/ledger")
async def credit_ledger(
    session: UnitOfWork,
    limit: int | None = Parameter(default=None), cursor: str | None = Parameter(default=None),
    agent_id: str | None = Parameter(query="agentId", default=None),
) -> Page:
    """Ledger entries newest first, of one agent or all."""
    rows, next_cursor = await credits.history(session, page_params(limit, cursor), agent_id)
    return Page(data=[ledger_view(e) for e in rows], next_cursor=next_cursor)


# Listed with the chain's operator routes (``app.transfers.admin_routes``), as the transfer is.
@post("/transfers/{transfer_id:str}/assign", status_code=200, errors=(409,), tags=["chain"])
async def assign_transfer(
    session: UnitOfWork, actor: Actor, transfer_id: str, data: AssignBody,
) -> TransferView:
    """Credit an unmatched deposit to an agent (e.g. its wallet was linked after it paid)."""
    return transfer_view(
        await deposits.assign(session, actor, transfer_id, data.agent_id, data.reason)
    )


router = Router(
    path="/admin/v1",
    route_handlers=[adjust_credits, credit_ledger, assign_transfer],
    before_request=ADMIN,
    tags=["admin"],
)
