"""Asking the settlement signer to submit an EIP-3009 authorization, and reading the outcome.

This is what the x402 payments code calls, inside its own transaction::

    submission = await settlement.request_settlement(
        session, network, verification.authorization, verification.signature,
        purpose_ref=payment.id,
    )
    ...later...
    outcome = await settlement.outcome(session, submission.id)   # status, txHash, final?

The request is a row (``queued``); the ``settle`` actor is enqueued once the caller's
transaction commits, and the settlement sweeper re-drives any row whose message was lost.
When a submission reaches a final status, every handler in :func:`outcome_handlers` runs in the
same transaction (the payments code adds its own there).

Everything else here is the signer's SQL: its nonce row (the lock), the transactions it signs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import msgspec
from sqlalchemy import update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import col, select

from app.attention.filters import not_parked
from app.db.models.attention import SETTLEMENT
from app.db.models.signer import (
    BROADCAST,
    FINAL_STATUSES,
    MINED,
    OPEN_STATUSES,
    QUEUED,
    SIGNED,
    SettlementSubmission,
    SettlementTransaction,
    SignerState,
)
from app.db.paging import PageParams, apply, split
from app.db.types import rfc3339, utcnow
from app.db.uow import UnitOfWork
from app.errors import Conflict, NotFound
from app.ids import new_id
from app.signer.tasks import settle_job
from chain.networks import Network
from chain.usdc import TransferAuthorization

# The sweeper leaves a submission alone this long past its next step (its own message is due).
SWEEP_GRACE_SECONDS = 10.0

class SettlementOutcome(msgspec.Struct, frozen=True, rename="camel"):
    """Where a settlement stands. ``final`` once nothing more will happen to it."""

    id: str
    status: str
    final: bool
    settled: bool
    network: str
    purpose_ref: str
    tx_hash: str | None
    block_number: int | None
    error: str | None
    duplicate_of: str | None
    created_at: str
    completed_at: str | None


OutcomeHandler = Callable[[UnitOfWork, SettlementSubmission], Awaitable[None]]


def outcome_handlers() -> list[OutcomeHandler]:
    """Called in the transaction that makes a submission final: payments settle or fail."""
    # Imported here: the payments code itself calls into this module to request settlement.
    from app.payments.settlement import on_submission_final

    return [on_submission_final]


async def request_settlement(
    session: UnitOfWork,
    network: Network,
    authorization: TransferAuthorization,
    signature: str,
    purpose_ref: str,
) -> SettlementSubmission:
    """Queue a *verified* authorization for settlement; idempotent per ``purpose_ref``.

    The same ``purpose_ref`` with the same authorization returns the existing submission; with
    a different one it is a ``Conflict``. Submitting an authorization that another submission
    already carries is allowed and ends as ``already_used`` (one transfer, never two).
    """
    existing = (
        await session.exec(
            select(SettlementSubmission).where(
                col(SettlementSubmission.purpose_ref) == purpose_ref
            )
        )
    ).first()
    if existing is not None:
        same = (
            existing.chain_id == network.chain_id
            and existing.authorizer == authorization.from_address.lower()
            and existing.auth_nonce == authorization.nonce.lower()
        )
        if not same:
            raise Conflict("This reference already has a settlement for another authorization.")
        return existing
    now = utcnow()
    submission = SettlementSubmission(
        id=new_id("stl"),
        network=network.name,
        chain_id=network.chain_id,
        purpose_ref=purpose_ref,
        signer="",
        authorizer=authorization.from_address.lower(),
        recipient=authorization.to_address.lower(),
        value=str(authorization.value),
        valid_after=authorization.valid_after,
        valid_before=authorization.valid_before,
        auth_nonce=authorization.nonce.lower(),
        signature=signature if signature.startswith("0x") else "0x" + signature,
        status=QUEUED,
        next_attempt_at=now + timedelta(seconds=SWEEP_GRACE_SECONDS),
        created_at=now,
        updated_at=now,
    )
    session.add(submission)
    await session.flush()
    session.enqueue(settle_job(submission.id))
    return submission


def authorization_of(submission: SettlementSubmission) -> TransferAuthorization:
    return TransferAuthorization(
        from_address=submission.authorizer,
        to_address=submission.recipient,
        value=int(submission.value),
        valid_after=submission.valid_after,
        valid_before=submission.valid_before,
        nonce=submission.auth_nonce,
    )


async def get(session: UnitOfWork, submission_id: str) -> SettlementSubmission:
    submission = await session.get(SettlementSubmission, submission_id)
    if submission is None:
        raise NotFound("Settlement not found.")
    return submission


def outcome_view(submission: SettlementSubmission) -> SettlementOutcome:
    return SettlementOutcome(
        id=submission.id,
        status=submission.status,
        final=submission.status in FINAL_STATUSES,
        settled=submission.status == MINED,
        network=submission.network,
        purpose_ref=submission.purpose_ref,
        tx_hash=submission.tx_hash,
        block_number=submission.block_number,
        error=submission.last_error,
        duplicate_of=submission.duplicate_of,
        created_at=rfc3339(submission.created_at) or "",
        completed_at=rfc3339(submission.completed_at),
    )


async def outcome(session: UnitOfWork, submission_id: str) -> SettlementOutcome:
    """Where the settlement stands (see :class:`SettlementOutcome`)."""
    return outcome_view(await get(session, submission_id))


async def search(
    session: UnitOfWork, params: PageParams, *, network: str | None = None,
    status: str | None = None, authorizer: str | None = None,
) -> tuple[list[SettlementSubmission], str | None]:
    stmt = select(SettlementSubmission)
    if network:
        stmt = stmt.where(col(SettlementSubmission.network) == network)
    if status:
        stmt = stmt.where(col(SettlementSubmission.status) == status)
    if authorizer:
        stmt = stmt.where(col(SettlementSubmission.authorizer) == authorizer.lower())
    rows = (await session.exec(apply(stmt, col(SettlementSubmission.id), params))).all()  # type: ignore[call-overload]
    return split(rows, params, lambda s: s.id)


# -- the signer's SQL ---------------------------------------------------------------------


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


async def reload(session: UnitOfWork, submission_id: str) -> SettlementSubmission:
    submission = await session.get(SettlementSubmission, submission_id, populate_existing=True)
    if submission is None:
        raise NotFound("Settlement not found.")
    return submission


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


async def finish(
    session: UnitOfWork, submission: SettlementSubmission, status: str, *,
    error: str | None = None, tx_hash: str | None = None, block_number: int | None = None,
    duplicate_of: str | None = None,
) -> None:
    """Make a submission final and run the outcome handlers in the same transaction."""
    now = utcnow()
    submission.status = status
    submission.last_error = error[:500] if error else None
    if tx_hash is not None:
        submission.tx_hash = tx_hash
    submission.block_number = block_number
    submission.duplicate_of = duplicate_of
    submission.next_attempt_at = None
    submission.completed_at = now
    submission.updated_at = now
    session.add(submission)
    await session.flush()
    for handler in outcome_handlers():
        await handler(session, submission)


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
