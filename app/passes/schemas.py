"""Wire shapes of a pass purchase."""

from __future__ import annotations

import msgspec


class PendingPayment(msgspec.Struct, rename="camel"):
    """The 202 of a payment still settling when the wait ends (``passes.pending_body``)."""

    payment_id: str
    status: str
    claim_token: str
    status_url: str
