"""Wire shape of a payment (its buyer's and the operator's view)."""

from __future__ import annotations

from typing import Any

import msgspec

from app.db.models.payments import Payment
from app.db.types import rfc3339


class PaymentView(msgspec.Struct, rename="camel"):
    payment_id: str
    status: str
    purpose: str
    network: str
    payer: str
    amount_micros: int
    transaction: str | None
    reason: str | None
    created_at: str
    settled_at: str | None
    result: dict[str, Any] | None = None
    # ``upto``: the most the client authorized (``amountMicros`` is what it was charged).
    authorized_micros: int | None = None


def payment_view(payment: Payment, result: dict[str, Any] | None = None) -> PaymentView:
    return PaymentView(
        payment_id=payment.id, status=payment.status, purpose=payment.purpose,
        network=payment.network, payer=payment.payer, amount_micros=payment.amount_micros,
        transaction=payment.tx_hash, reason=payment.failure_reason,
        created_at=rfc3339(payment.created_at) or "", settled_at=rfc3339(payment.settled_at),
        result=result, authorized_micros=payment.authorized_micros,
    )
