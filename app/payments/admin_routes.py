"""Operator view of payments (challenges answered): filter by status, network, payer."""

from __future__ import annotations

from litestar import Router, get
from litestar.params import Parameter

from app.auth.guards import ADMIN
from app.db.paging import Page, page_params
from app.db.uow import UnitOfWork
from app.payments import service as payments
from app.payments.schemas import PaymentView, payment_view


@get("/")
async def list_payments(
    session: UnitOfWork,
    limit: int | None = Parameter(default=None), cursor: str | None = Parameter(default=None),
    status: str | None = Parameter(default=None, max_length=12),
    network: str | None = Parameter(default=None, max_length=40),
    payer: str | None = Parameter(default=None, max_length=42),
    purpose: str | None = Parameter(default=None, max_length=20),
) -> Page:
    """Payments newest first; ``payer`` is an address (any case)."""
    rows, next_cursor = await payments.search(
        session, page_params(limit, cursor), status=status, network=network, payer=payer,
        purpose=purpose,
    )
    return Page(data=[payment_view(p) for p in rows], next_cursor=next_cursor)


@get("/{payment_id:str}")
async def get_payment(session: UnitOfWork, payment_id: str) -> PaymentView:
    return payment_view(await payments.get(session, payment_id))


router = Router(
    path="/admin/v1/payments",
    route_handlers=[list_payments, get_payment],
    before_request=ADMIN,
    tags=["admin"],
)
