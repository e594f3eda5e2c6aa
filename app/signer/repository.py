"""SQL of the settlement signer: submissions, the transactions it signs, its nonce row (the lock).

Nothing here commits: the signer's steps (``app.signer.steps``) and the caller's unit of work
own the transactions.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import col, select

from app.attention.filters import not_parked
from app.db.models.attention import SETTLEMENT
from app.db.models.signer import (
    BROADCAST,
    MINED,
    OPEN_STATUSES,
    SIGNED,
    SettlementSubmission,
    SettlementTransaction,
    SignerState,
)
from app.db.paging import PageParams
from app.db.queries import get_or_404, page, where_equal
from app.db.types import utcnow
from app.db.uow import UnitOfWork


async def get(session: UnitOfWork, submission_id: str) -> SettlementSubmission:
    return await get_or_404(session, SettlementSubmission, submission_id, "Settlement")


async def reload(session: UnitOfWork, submission_id: str) -> SettlementSubmission:
    """The submission as the database has it now (after the signer lock was taken)."""
    submission = await session.get(SettlementSubmission, submission_id, populate_existing=True)
    if submission is None:
        return await get(session, submission_id)  # NOT_FOUND
    return submission


async def for_reference(session: UnitOfWork, purpose_ref: str) -> SettlementSubmission | None:
    return (
        await session.exec(
            select(SettlementSubmission).where(
                col(SettlementSubmission.purpose_ref) == purpose_ref
            )
        )
    ).first()


async def search(
    session: UnitOfWork, params: PageParams, *, network: str | None, status: str | None,
    authorizer: str | None,
) -> tuple[list[SettlementSubmission], str | None]:
    # An empty filter is no filter, as an absent one.
    stmt = where_equal(
        select(SettlementSubmission),
        (col(SettlementSubmission.network), network or None),
        (col(SettlementSubmission.status), status or None),
        (col(SettlementSubmission.authorizer), authorizer.lower() if authorizer else None),
    )
    return await page(session, stmt, col(SettlementSubmission.id), params)


async def lock_signer(session: UnitOfWork, chain_id: int, address: str) -> SignerState:
    """Take the signer lock for this transaction and return its nonce row.

    Must be the transaction's first statement: the UPDATE takes the row lock in PostgreSQL
    and the database write lock in SQLite (waiting on busy_timeout), so whoever holds it is
    the only one allocating this signer's nonces until it commits.
    """
    address = address.lower()
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    now = utcnow()
    await session.execute(
        insert(SignerState)
        .values(chain_id=chain_id, address=address, next_nonce=0, updated_at=now)
        .on_conflict_do_nothing(index_elements=["chain_id", "address"])
    )
    await session.execute(
        update(SignerState)
        .where(col(SignerState.chain_id) == chain_id, col(SignerState.address) == address)
        .values(updated_at=now)
    )
    state = await session.get(SignerState, (chain_id, address), populate_existing=True)
    assert state is not None
    return state


async def in_flight_duplicate(
    session: UnitOfWork, submission: SettlementSubmission
) -> SettlementSubmission | None:
    """Another submission of the same authorization that already signed (or settled) it."""
    return (
        await session.exec(
            select(SettlementSubmission).where(
                col(SettlementSubmission.chain_id) == submission.chain_id,
                col(SettlementSubmission.authorizer) == submission.authorizer,
                col(SettlementSubmission.auth_nonce) == submission.auth_nonce,
                col(SettlementSubmission.id) != submission.id,
                col(SettlementSubmission.status).in_((SIGNED, BROADCAST, MINED)),
            )
        )
    ).first()


async def signer_busy(session: UnitOfWork, chain_id: int, signer: str) -> bool:
    """True while a transaction of this signer is signed or broadcast but not final."""
    count = (
        await session.execute(
            select(func.count())
            .select_from(SettlementSubmission)
            .where(
                col(SettlementSubmission.chain_id) == chain_id,
                col(SettlementSubmission.signer) == signer.lower(),
                col(SettlementSubmission.status).in_((SIGNED, BROADCAST)),
            )
        )
    ).scalar_one()
    return bool(count)


async def transactions_of(
    session: UnitOfWork, submission_id: str
) -> list[SettlementTransaction]:
    """The submission's signed transactions, newest first."""
    rows = await session.exec(
        select(SettlementTransaction)
        .where(col(SettlementTransaction.submission_id) == submission_id)
        .order_by(col(SettlementTransaction.id).desc())
    )
    return list(rows.all())


async def reload_transaction(
    session: UnitOfWork, transaction_id: str
) -> SettlementTransaction | None:
    return await session.get(SettlementTransaction, transaction_id, populate_existing=True)


async def reschedule(
    session: UnitOfWork, submission_id: str, next_attempt_at: datetime, *,
    attempts: int | None = None, error: str | None = None,
) -> None:
    """Move the submission's next step, without the signer lock (its state is unchanged); with
    ``attempts`` and ``error``, record a failed attempt too."""
    stmt = (
        update(SettlementSubmission)
        .where(col(SettlementSubmission.id) == submission_id)
        .values(next_attempt_at=next_attempt_at)
    )
    if attempts is not None:
        stmt = stmt.values(attempts=attempts, last_error=error, updated_at=utcnow())
    await session.execute(stmt)


@dataclass(frozen=True, slots=True)
class Due:
    id: str
    status: str


async def due_submissions(session: UnitOfWork, now: datetime, limit: int) -> list[Due]:
    """Open submissions whose next step is due (what the sweeper re-drives), except those
    parked for an operator."""
    rows = await session.exec(
        select(SettlementSubmission)
        .where(
            col(SettlementSubmission.status).in_(OPEN_STATUSES),
            col(SettlementSubmission.next_attempt_at) <= now,
            not_parked(SETTLEMENT, SettlementSubmission.id),
        )
        .order_by(col(SettlementSubmission.next_attempt_at))
        .limit(limit)
    )
    return [Due(row.id, row.status) for row in rows.all()]
