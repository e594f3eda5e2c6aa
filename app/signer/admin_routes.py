"""Operator view of the settlement signer: what it was asked to submit (``/admin/v1``)."""

from __future__ import annotations

from litestar import Router, get
from litestar.params import Parameter

from app.auth.guards import ADMIN
from app.db.paging import Page, page_params
from app.db.uow import UnitOfWork
from app.signer import service as signer
from app.signer.schemas import SettlementOutcome


@get("/settlements")
async def list_settlements(
    session: UnitOfWork,
    limit: int | None = Parameter(default=None), cursor: str | None = Parameter(default=None),
    network: str | None = Parameter(default=None, max_length=20),
    status: str | None = Parameter(default=None, max_length=16),
    payer: str | None = Parameter(default=None, max_length=42),
) -> Page:
    """What the settlement signer was asked to submit, and how each ended."""
    views, next_cursor = await signer.search(
        session, page_params(limit, cursor), network=network, status=status, authorizer=payer
    )
    return Page(data=list(views), next_cursor=next_cursor)


@get("/settlements/{submission_id:str}")
async def get_settlement(session: UnitOfWork, submission_id: str) -> SettlementOutcome:
    return await signer.outcome(session, submission_id)


router = Router(
    path="/admin/v1",
    route_handlers=[list_settlements, get_settlement],
    before_request=ADMIN,
    tags=["admin", "chain"],
)
