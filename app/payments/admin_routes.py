"""Operator view of payments (challenges answered): filter by status, network, payer."""

from __future__ import annotations

from litestar import Router, get
from litestar.params import Parameter
from sqlmodel import col, select

from app.auth.guards import ADMIN
from app.db.models.payments import Payment
from app.db.paging import Page, apply, page_params, split
from app.db.uow import UnitOfWork
from app.errors import NotFound
from app.payments.routes import PaymentView, payment_view


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
    params = page_params(limit, cursor)
    stmt = select(Payment)
    if status:
        stmt = stmt.where(col(Payment.status) == status)
    if network:
        stmt = stmt.where(col(Payment.network) == network)
    if payer:
        stmt = stmt.where(col(Payment.payer) == payer.lower())
    if purpose:
        stmt = stmt.where(col(Payment.purpose) == purpose)
    rows = (await session.exec(apply(stmt, col(Payment.id), params))).all()  # type: ignore[call-overload]
    items, next_cursor = split(rows, params, lambda p: p.id)
    return Page(data=[payment_view(p) for p in items], next_cursor=next_cursor)


@get("/{payment_id:str}")
async def get_payment(session: UnitOfWork, payment_id: str) -> PaymentView:
    payment = await session.get(Payment, payment_id)
    if payment is None:
        raise NotFound("Payment not found.")
    return payment_view(payment)


router = Router(
    path="/admin/v1/payments",
    route_handlers=[list_payments, get_payment],
    before_request=ADMIN,
    tags=["admin"],
)
