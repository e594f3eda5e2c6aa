"""SQL of payments: lookups, the conditional status changes, and what the signer recorded.

Payments read the signer's tables (``app.db.models.signer``) to tell which transaction belongs
to which payment (``app.payments.binding``). Nothing here commits.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlmodel import col, select

from app.attention.filters import not_parked
from app.db.models.attention import PAYMENT_EXPIRY
from app.db.models.payments import Payment
from app.db.models.signer import SettlementSubmission, SettlementTransaction
from app.db.models.transfers import ChainTransfer
from app.db.paging import PageParams
from app.db.queries import get_or_404, page, where_equal
from app.db.types import utcnow
from app.db.uow import UnitOfWork
from chain.usdc import AuthorizationUse

# What a transfer that pays a payment counts as (``ChainTransfer.purpose``).
PAYMENT = "payment"


async def get(session: UnitOfWork, payment_id: str) -> Payment:
    return await get_or_404(session, Payment, payment_id, "Payment")


async def find(session: UnitOfWork, payment_id: str) -> Payment | None:
    return await session.get(Payment, payment_id)


async def search(
    session: UnitOfWork, params: PageParams, *, status: str | None, network: str | None,
    payer: str | None, purpose: str | None,
) -> tuple[list[Payment], str | None]:
    # An empty filter is no filter, as an absent one.
    stmt = where_equal(
        select(Payment),
        (col(Payment.status), status or None),
        (col(Payment.network), network or None),
        (col(Payment.payer), payer.lower() if payer else None),
        (col(Payment.purpose), purpose or None),
    )
    return await page(session, stmt, col(Payment.id), params)


async def recorded(
    session: UnitOfWork, network: str, *, nonce: str | None = None, tx_hash: str | None = None,
) -> Payment | None:
    """The payment already recorded for a signed authorization's ``nonce``, or for a pushed
    transfer's ``tx_hash``."""
    stmt = select(Payment).where(col(Payment.network) == network)
    if nonce is not None:
        stmt = stmt.where(col(Payment.auth_nonce) == nonce)
    else:
        # A signed payment that settled through this transaction is not a pushed one: see
        # app.payments.binding for why such a hash is refused.
        stmt = stmt.where(col(Payment.tx_hash) == tx_hash, col(Payment.scheme) == "push")
    return (await session.exec(stmt)).first()


async def with_identifier(session: UnitOfWork, identifier: str) -> Payment | None:
    """The payment bound to an x402 ``payment-identifier`` (``app.payments.identifiers``)."""
    stmt = select(Payment).where(col(Payment.payment_identifier) == identifier)
    return (await session.exec(stmt)).first()


async def transition(
    session: UnitOfWork, payment_id: str, from_statuses: Iterable[str] | None,
    values: dict[str, Any],
) -> bool:
    """Set ``values`` on the payment if its status is one of ``from_statuses`` (None: any but
    ``settled``); True when this call changed it."""
    condition = (
        col(Payment.status) != "settled" if from_statuses is None
        else col(Payment.status).in_(tuple(from_statuses))
    )
    result = await session.execute(
        update(Payment).where(col(Payment.id) == payment_id, condition).values(values)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]  # CursorResult of an UPDATE


async def reload(session: UnitOfWork, payment_id: str) -> Payment:
    payment = await session.get(Payment, payment_id, populate_existing=True)
    assert payment is not None
    return payment


async def due_to_expire(
    session: UnitOfWork, exact_cutoff: datetime, push_cutoff: datetime, limit: int
) -> list[str]:
    """Unsettled signed payments whose authorization ended before ``exact_cutoff``, and pushed
    ones recorded before ``push_cutoff``, except those parked for an operator."""
    rows = await session.exec(
        select(Payment.id)
        .where(
            col(Payment.status).in_(("pending", "submitted")),
            (col(Payment.scheme).in_(("exact", "upto"))
             & (col(Payment.valid_before) <= exact_cutoff))
            | ((col(Payment.scheme) == "push") & (col(Payment.created_at) <= push_cutoff)),
            not_parked(PAYMENT_EXPIRY, Payment.id),
        )
        .limit(limit)
    )
    return list(rows.all())


async def forget_kept_results(session: UnitOfWork, now: datetime, limit: int) -> int:
    """Drop at most ``limit`` sealed results whose replay window has closed (a pass's key among
    them): past the window a retry is refused anyway, so nothing may keep them. Returns how
    many were dropped."""
    due = (
        select(Payment.id)
        .where(col(Payment.result_sealed).is_not(None), col(Payment.result_expires_at) <= now)
        .limit(limit)
        .scalar_subquery()
    )
    result = await session.exec(
        update(Payment).where(col(Payment.id).in_(due)).values(result_sealed=None)
    )
    return int(result.rowcount or 0)


# -- payments and the transactions that pay them ------------------------------------------


async def payments_naming(session: UnitOfWork, network: str, tx_hash: str) -> list[Payment]:
    """Every payment, signed or pushed, recorded with ``tx_hash``."""
    rows = await session.exec(
        select(Payment).where(col(Payment.network) == network, col(Payment.tx_hash) == tx_hash)
    )
    return list(rows.all())


async def signed_payment_naming(session: UnitOfWork, network: str, tx_hash: str) -> str | None:
    """A signed (not pushed) payment recorded with ``tx_hash``."""
    return (
        await session.exec(
            select(Payment.id).where(
                col(Payment.network) == network,
                col(Payment.tx_hash) == tx_hash,
                col(Payment.scheme) != "push",
            )
        )
    ).first()


async def live_pushes_naming(session: UnitOfWork, network: str, tx_hash: str) -> list[Payment]:
    """Pushed payments that name ``tx_hash`` and have not lost it (failed or expired)."""
    rows = await session.exec(
        select(Payment).where(
            col(Payment.network) == network,
            col(Payment.tx_hash) == tx_hash,
            col(Payment.scheme) == "push",
            col(Payment.status).in_(("pending", "submitted", "settled")),
        )
    )
    return list(rows.all())


async def with_authorization(
    session: UnitOfWork, network: str, use: AuthorizationUse
) -> Payment | None:
    """The signed payment recorded for the authorization ``use`` spent."""
    return (
        await session.exec(
            select(Payment).where(
                col(Payment.network) == network,
                col(Payment.auth_nonce) == use.nonce.lower(),
                col(Payment.payer) == use.authorizer.lower(),
            )
        )
    ).first()


async def hand_transfer_over(session: UnitOfWork, loser_id: str, payment: Payment) -> None:
    """The transfer counted for payment ``loser_id`` counts for ``payment`` instead."""
    await session.execute(
        update(ChainTransfer)
        .where(col(ChainTransfer.purpose) == PAYMENT, col(ChainTransfer.reference) == loser_id)
        .values(reference=payment.id, agent_id=payment.agent_id, updated_at=utcnow())
    )


# -- what the settlement signer recorded --------------------------------------------------


async def signer_sent(session: UnitOfWork, chain_id: int, tx_hash: str) -> str | None:
    """The submission one of whose transactions (any, not only its latest) is ``tx_hash``."""
    return (
        await session.exec(
            select(SettlementTransaction.submission_id).where(
                col(SettlementTransaction.chain_id) == chain_id,
                col(SettlementTransaction.tx_hash) == tx_hash,
            )
        )
    ).first()


async def submission(session: UnitOfWork, submission_id: str) -> SettlementSubmission | None:
    return await session.get(SettlementSubmission, submission_id)


async def submission_settled_by(
    session: UnitOfWork, chain_id: int, tx_hash: str
) -> SettlementSubmission | None:
    """The submission that ended with ``tx_hash`` (its own, or the one that spent its
    authorization)."""
    return (
        await session.exec(
            select(SettlementSubmission).where(
                col(SettlementSubmission.chain_id) == chain_id,
                col(SettlementSubmission.tx_hash) == tx_hash,
            )
        )
    ).first()


async def authorization_submitted(
    session: UnitOfWork, chain_id: int, use: AuthorizationUse
) -> bool:
    """True when the signer was asked to submit the authorization ``use`` spent."""
    found = (
        await session.exec(
            select(SettlementSubmission.id).where(
                col(SettlementSubmission.chain_id) == chain_id,
                col(SettlementSubmission.authorizer) == use.authorizer.lower(),
                col(SettlementSubmission.auth_nonce) == use.nonce.lower(),
            )
        )
    ).first()
    return found is not None
