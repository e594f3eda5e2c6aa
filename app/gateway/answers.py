"""The answer to a paid gateway call, kept for retries that carry its x402 payment identifier.

A client that lost the answer to a paid call retries with the same ``payment-identifier``; it
must get the answer it paid for, without a second upstream call and without a second charge.
An answer of at most ``KEEP_BYTES`` (64 KiB) is kept sealed (AES-GCM, like a pass key kept for
replays) on the payment for ``payment_replay_seconds``: one read whole is written in the
transaction that hands the payment to the settlement signer; a streamed one (chunked, SSE) is
copied as it is relayed and written once it has been sent in full. A larger answer is not kept:
a retry is told so (409), never forwarded again. A retry that arrives while the answer is still
being relayed is 409 too (in progress).

Only payments bound to an identifier keep their answer: the same authorization sent again
without one is refused as today (PAYMENT_ALREADY_USED).
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import AsyncIterable, AsyncIterator
from datetime import timedelta

import anyio
from litestar.response.base import ASGIResponse
from sqlalchemy.ext.asyncio import async_sessionmaker

from app.crypto import SecretBox
from app.db.models.payments import Payment
from app.db.types import utcnow
from app.db.uow import UnitOfWork
from app.errors import Conflict
from app.gateway import repository
from app.gateway.incoming import Headers
from app.gateway.relay import BufferedRelay, RelayedResponse
from app.settings import Settings

log = logging.getLogger("passgate.gateway")

KEEP_BYTES = 64 * 1024
# Added per answer (the settlement's outcome), never part of what is kept.
_PER_ANSWER = frozenset({b"payment-response", b"x-payment-id", b"x-payment-status"})

IN_PROGRESS = ("The call this payment identifier pays for is still in progress; retry in a "
               "moment for its answer.")
NOT_KEPT = ("The call this payment identifier paid for was already answered, and its answer "
            "was not kept (streamed, larger than 64 KiB, or older than the replay window). "
            "Nothing was charged again; use a new identifier for a new call.")


def _box(settings: Settings) -> SecretBox:
    return SecretBox(settings.key_pepper.get_secret_value())


def _sealed(settings: Settings, payment_id: str, status: int, headers: Headers,
            body: bytes) -> str:
    kept = {
        "status": status,
        "headers": [[name.decode("latin-1"), value.decode("latin-1")]
                    for name, value in headers if name.lower() not in _PER_ANSWER],
        "body": base64.b64encode(body).decode(),
    }
    return _box(settings).seal(json.dumps(kept), context=payment_id)


def keep(settings: Settings, sessions: async_sessionmaker[UnitOfWork], payment: Payment,
         response: ASGIResponse | None) -> None:
    """Keep ``response`` sealed on ``payment`` for its identifier's retries: now when read
    whole (the caller commits), once relayed in full when streamed."""
    if payment.payment_identifier is None or settings.payment_replay_seconds <= 0:
        return
    if isinstance(response, BufferedRelay) and len(response.body) <= KEEP_BYTES:
        payment.result_sealed = _sealed(settings, payment.id, response.status_code,
                                        response.raw_headers, response.body)
        payment.result_expires_at = utcnow() + timedelta(seconds=settings.payment_replay_seconds)
    elif isinstance(response, RelayedResponse):
        response.iterator = _copied(settings, sessions, payment.id, response,
                                    response.iterator)


async def _copied(settings: Settings, sessions: async_sessionmaker[UnitOfWork], payment_id: str,
                  response: RelayedResponse,
                  source: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
    """Relay the stream unchanged; once it was sent in full and is small enough, keep it."""
    copy: list[bytes] | None = []
    size = 0
    async for chunk in source:
        size += len(chunk)
        if copy is not None and size <= KEEP_BYTES:
            copy.append(chunk)
        else:
            copy = None
        yield chunk
    if copy is None:
        return
    sealed = _sealed(settings, payment_id, response.status_code, response.raw_headers,
                     b"".join(copy))
    expires = utcnow() + timedelta(seconds=settings.payment_replay_seconds)
    try:
        # Shielded: a caller leaving right after the last byte has its answer, and its retry
        # must still find it kept.
        with anyio.CancelScope(shield=True):
            async with sessions() as session:
                await repository.keep_answer(session, payment_id, sealed, expires)
                await session.commit()
    except Exception:
        # The caller has its answer; only a retry's replay is lost (it gets a 409).
        log.warning("could not keep the answer of payment %s", payment_id, exc_info=True)


def answered(settings: Settings, payment: Payment, *, head: bool) -> BufferedRelay | None:
    """What a retry with ``payment``'s identifier gets instead of a new call: the kept answer,
    or CONFLICT; None when the call is yet to be made (a first request, or a retry of a call
    that failed upstream, which the same authorization still pays for)."""
    if payment.payment_identifier is None or payment.status not in ("pending", "settled"):
        return None
    if payment.status == "pending" and payment.fulfilled_at is None:
        return None
    if payment.status == "pending":
        # Answered upstream, not settled yet: the kept answer waits for the settlement, or a
        # payer who spends its funds meanwhile would have the answer for nothing.
        raise Conflict(IN_PROGRESS, details={"paymentId": payment.id})
    if payment.result_sealed and payment.result_expires_at and payment.result_expires_at > utcnow():
        kept = json.loads(_box(settings).open(payment.result_sealed, context=payment.id))
        body = base64.b64decode(kept["body"])
        return BufferedRelay(
            body=b"" if head else body, status_code=int(kept["status"]),
            raw_headers=[(n.encode("latin-1"), v.encode("latin-1")) for n, v in kept["headers"]],
            is_head_response=head,
        )
    raise Conflict(NOT_KEPT, details={"paymentId": payment.id})
