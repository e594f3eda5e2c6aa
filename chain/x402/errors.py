"""Exceptions of the x402 layer.

Only malformed input raises: a well-formed payment that fails a check is an answer
(``PaymentVerification``/``TransferVerification`` with a reason), not an exception. RPC trouble
surfaces as ``chain.errors.RpcUnavailable``/``RpcError`` (the API answers 503).
"""

from __future__ import annotations

__all__ = ["PaymentHeaderError"]


class PaymentHeaderError(ValueError):
    """A payment header could not be parsed.

    ``header`` names the offending header as the client spelled it in the spec
    (``PAYMENT-SIGNATURE``, ``X-PAYMENT``, ``X-Payment-Chain``); ``message`` is safe to show the
    client. The API maps it to 402 PAYMENT_INVALID (undecodable payment) or 400 VALIDATION_ERROR.
    """

    def __init__(self, header: str, message: str) -> None:
        super().__init__(f"{header}: {message}")
        self.header = header
        self.message = message
