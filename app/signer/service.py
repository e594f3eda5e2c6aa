"""Asking the settlement signer to submit an EIP-3009 authorization, and reading the outcome.

This is what the x402 payments code calls, inside its own transaction::

    submission = await signer.request_settlement(
        session, network, verification.authorization, verification.signature,
        purpose_ref=payment.id,
    )
    ...later...
    outcome = await signer.outcome(session, submission.id)   # status, txHash, final?

The request is a row (``queued``); the ``settle`` actor is enqueued once the caller's
transaction commits, and the settlement sweeper re-drives any row whose message was lost.

The signer's steps (``app.signer.steps``) are this area's flow that needs several
transactions: each step of a submission (checks, then sign and record under the signer lock,
then broadcast, then follow to a final status) is a transaction of its own, so a crash between
any two of them re-drives the same recorded transaction. When a submission reaches a final
status, :func:`finish` calls the final-outcome handler it was given in that same transaction:
the signer knows nothing of what a submission is for (``app.integrations.chain`` decides).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from app.db.models.signer import QUEUED, SettlementSubmission, SettlementTransaction
from app.db.paging import PageParams
from app.db.types import utcnow
from app.db.uow import UnitOfWork
from app.errors import Conflict
from app.ids import new_id
from app.signer import repository
from app.signer.repository import Due
from app.signer.schemas import SettlementOutcome, outcome_view
from app.signer.tasks import settle_job
from chain.networks import Network
from chain.usdc import TransferAuthorization

__all__ = [
    "SWEEP_GRACE_SECONDS", "Due", "OutcomeHandler", "authorization_of", "due_submissions",
    "finish", "get", "outcome", "request_settlement", "search", "transactions_of",
]

# The sweeper leaves a submission alone this long past its next step (its own message is due).
SWEEP_GRACE_SECONDS = 10.0

# Called in the transaction that makes a submission final (``app.integrations.chain``).
OutcomeHandler = Callable[[UnitOfWork, SettlementSubmission], Awaitable[None]]


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
    existing = await repository.for_reference(session, purpose_ref)
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
    """The authorization a submission carries."""
    return TransferAuthorization(
        from_address=submission.authorizer,
        to_address=submission.recipient,
        value=int(submission.value),
        valid_after=submission.valid_after,
        valid_before=submission.valid_before,
        nonce=submission.auth_nonce,
    )


async def get(session: UnitOfWork, submission_id: str) -> SettlementSubmission:
    """One submission, or NOT_FOUND."""
    return await repository.get(session, submission_id)


async def transactions_of(
    session: UnitOfWork, submission_id: str
) -> list[SettlementTransaction]:
    """The submission's signed transactions, newest first."""
    return await repository.transactions_of(session, submission_id)


async def outcome(session: UnitOfWork, submission_id: str) -> SettlementOutcome:
    """Where the settlement stands (see :class:`SettlementOutcome`)."""
    return outcome_view(await repository.get(session, submission_id))


async def search(
    session: UnitOfWork, params: PageParams, *, network: str | None = None,
    status: str | None = None, authorizer: str | None = None,
) -> tuple[list[SettlementOutcome], str | None]:
    """Submissions newest first, filtered; ``authorizer`` is an address (any case)."""
    rows, next_cursor = await repository.search(
        session, params, network=network, status=status, authorizer=authorizer
    )
    return [outcome_view(row) for row in rows], next_cursor


async def finish(
    session: UnitOfWork, submission: SettlementSubmission, status: str, *,
    on_final: OutcomeHandler, error: str | None = None, tx_hash: str | None = None,
    block_number: int | None = None, duplicate_of: str | None = None,
) -> None:
    """Make a submission final and call ``on_final`` in the same transaction."""
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
    await on_final(session, submission)


async def due_submissions(session: UnitOfWork, now: datetime, limit: int) -> list[Due]:
    """Open submissions whose next step is due (what the sweeper re-drives), except those
    parked for an operator."""
    return await repository.due_submissions(session, now, limit)
