"""The answer to a paid gateway call, kept for retries that carry its x402 payment identifier.

A client that lost the answer to a paid call retries with the same ``payment-identifier``; it
must get the answer it paid for, without a second upstream call and without a second charge.
An answer read whole (at most ``BUFFER_BYTES``, 64 KiB, with a Content-Length) is kept sealed
(AES-GCM, like a pass key kept for replays) on the payment for ``payment_replay_seconds``,
written in the transaction that hands the payment to the settlement signer. A streamed answer
(larger, SSE, chunked) is not kept: a retry is told so (409), never forwarded again.

Only payments bound to an identifier keep their answer: the same authorization sent again
without one is refused as today (PAYMENT_ALREADY_USED).
"""

from __future__ import annotations

import base64
import json
from datetime import timedelta

from litestar.response.base import ASGIResponse

from app.crypto import SecretBox
from app.db.models.payments import Payment
from app.db.types import utcnow
from app.errors import Conflict
from app.gateway.relay import BufferedRelay
from app.settings import Settings

IN_PROGRESS = ("The call this payment identifier pays for is still in progress; retry in a "
               "moment for its answer.")
NOT_KEPT = ("The call this payment identifier paid for was already answered, and its answer "
            "was not kept (streamed, larger than 64 KiB, or older than the replay window). "
            "Nothing was charged again; use a new identifier for a new call.")


def _box(settings: Settings) -> SecretBox:
    return SecretBox(settings.key_pepper.get_secret_value())


def keep(settings: Settings, payment: Payment, response: ASGIResponse | None) -> None:
    """Seal ``response`` on ``payment`` for its identifier's retries (the caller commits)."""
    if (payment.payment_identifier is None or settings.payment_replay_seconds <= 0
            or not isinstance(response, BufferedRelay)):
        return
    kept = {
        "status": response.status_code,
        "headers": [[name.decode("latin-1"), value.decode("latin-1")]
                    for name, value in response.raw_headers],
        "body": base64.b64encode(response.body).decode(),
    }
    payment.result_sealed = _box(settings).seal(json.dumps(kept), context=payment.id)
    payment.result_expires_at = utcnow() + timedelta(seconds=settings.payment_replay_seconds)


def answered(settings: Settings, payment: Payment, *, head: bool) -> BufferedRelay | None:
    """What a retry with ``payment``'s identifier gets instead of a new call: the kept answer,
    or CONFLICT; None when the call is yet to be made (a first request, or a retry of a call
    that failed upstream, which the same authorization still pays for)."""
    if payment.payment_identifier is None or payment.status not in ("pending", "settled"):
        return None
    if payment.status == "pending" and payment.fulfilled_at is None:
        return None
    if payment.result_sealed and payment.result_expires_at and payment.result_expires_at > utcnow():
        kept = json.loads(_box(settings).open(payment.result_sealed, context=payment.id))
        body = base64.b64decode(kept["body"])
        return BufferedRelay(
            body=b"" if head else body, status_code=int(kept["status"]),
            raw_headers=[(n.encode("latin-1"), v.encode("latin-1")) for n, v in kept["headers"]],
            is_head_response=head,
        )
    if payment.status == "pending":
        raise Conflict(IN_PROGRESS, details={"paymentId": payment.id})
    raise Conflict(NOT_KEPT, details={"paymentId": payment.id})
