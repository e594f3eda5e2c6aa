"""The x402 protocol layer: 402 requirements, payment headers, verification, response headers.

Free of the web app: the payments service calls these with plain values and ``ChainClient``s.

1. ``build_payment_challenge(...)`` -> ``PaymentChallenge``: ``header_value()`` for
   ``PAYMENT-REQUIRED``, ``v1_body()`` for the 402 JSON body.
2. ``decode_payment(headers, networks)`` -> ``SignedPayment | PushedPayment | None``
   (``PaymentHeaderError`` when malformed).
3. ``await verify_signed_payment(payment, challenge, clients, settlement_address=...)``
   -> ``PaymentVerification``; ``await verify_pushed_transfer(client, network, tx_hash, ...)``
   -> ``TransferVerification``.
4. ``settlement_response_header(version, ...)`` -> ``(name, value)``.

``chain.x402.payer`` holds the paying side (SDK client) for tests and the demo.
"""

from chain.x402.errors import PaymentHeaderError
from chain.x402.headers import (
    PAYMENT_REQUIRED,
    PAYMENT_RESPONSE,
    PAYMENT_SIGNATURE,
    X_PAYMENT,
    X_PAYMENT_CHAIN,
    X_PAYMENT_RESPONSE,
    PushedPayment,
    SignedPayment,
    decode_payment,
)
from chain.x402.push import PushReason, TransferVerification, verify_pushed_transfer
from chain.x402.requirements import (
    PaymentChallenge,
    PaymentOffer,
    build_payment_challenge,
    v1_network_name,
)
from chain.x402.response import settlement_response_header
from chain.x402.verify import (
    DEFAULT_MIN_VALIDITY_SECONDS,
    PaymentVerification,
    VerifyReason,
    verify_signed_payment,
)

__all__ = [
    "DEFAULT_MIN_VALIDITY_SECONDS",
    "PAYMENT_REQUIRED",
    "PAYMENT_RESPONSE",
    "PAYMENT_SIGNATURE",
    "X_PAYMENT",
    "X_PAYMENT_CHAIN",
    "X_PAYMENT_RESPONSE",
    "PaymentChallenge",
    "PaymentHeaderError",
    "PaymentOffer",
    "PaymentVerification",
    "PushReason",
    "PushedPayment",
    "SignedPayment",
    "TransferVerification",
    "VerifyReason",
    "build_payment_challenge",
    "decode_payment",
    "settlement_response_header",
    "v1_network_name",
    "verify_pushed_transfer",
    "verify_signed_payment",
]
