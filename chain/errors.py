"""The chain package's exception tree and the mapping from raw RPC errors onto it.

Callers branch on the class, never on provider wording:

- ``RpcUnavailable``: the node could not be reached or did not answer in time (connection
  refused, timeout, HTTP 429/5xx). Transient: retry with backoff.
- ``RpcError``: the node answered with an error.
  - ``RangeTooLarge``: ``eth_getLogs`` hit a provider limit (block range or result count).
    Shrink the range and retry.
  - ``ExecutionReverted``: a call or transaction reverted; ``reason`` holds the revert string.
  - ``TransactionRejected``: ``eth_sendRawTransaction`` refused the transaction; ``kind`` says why
    (``invalid``: no node will ever take it as signed; ``other``: wording we do not know).
"""

from __future__ import annotations

from typing import Any, Literal

from eth_abi.abi import decode as abi_decode

__all__ = [
    "ChainError",
    "ExecutionReverted",
    "RangeTooLarge",
    "RejectKind",
    "RpcError",
    "RpcUnavailable",
    "TransactionRejected",
    "classify_rpc_error",
    "decode_revert_reason",
]

RejectKind = Literal[
    "nonce_too_low", "underpriced", "already_known", "insufficient_funds", "fee_too_low",
    "invalid", "other",
]

# Error(string) selector used by `require(cond, "reason")`.
_ERROR_STRING_SELECTOR = "08c379a0"

# Wording seen from geth, reth, anvil and hosted providers (Alchemy, Infura, QuickNode, public
# Base nodes) when eth_getLogs asks for too much. Matched case-insensitively as substrings.
_RANGE_TOO_LARGE_HINTS = (
    "range too large",
    "range is too large",
    "range too wide",
    "range is too wide",
    "block range",
    "exceed maximum block range",
    "exceeds the range",
    "range limit",
    "is limited to a",
    "max range",
    "maximum range",
    "max results",
    "too many results",
    "too many logs",
    "more than 10000 results",
    "query returned more than",
    "response size exceeded",
    "response size should not",
    "log response size",
    "limit exceeded",
    "query timeout exceeded",
)

_REJECT_HINTS: tuple[tuple[str, RejectKind], ...] = (
    ("nonce too low", "nonce_too_low"),
    ("already known", "already_known"),
    ("known transaction", "already_known"),
    ("underpriced", "underpriced"),
    ("insufficient funds", "insufficient_funds"),
    ("less than block base fee", "fee_too_low"),
    ("fee cap less than", "fee_too_low"),
    # "invalid": the transaction as signed can never be accepted, whatever the node's state.
    ("intrinsic gas too", "invalid"),  # too low, or too high (above the block gas limit)
    ("exceeds block gas limit", "invalid"),
    ("gas limit reached", "invalid"),
    ("higher than max fee per gas", "invalid"),
    ("tip higher than fee cap", "invalid"),
    ("invalid chain id", "invalid"),
    ("invalid sender", "invalid"),
    ("exceeds the configured cap", "invalid"),
    ("oversized data", "invalid"),
    ("transaction type not supported", "invalid"),
)

# JSON-RPC "limit exceeded" (EIP-1474); providers use it for oversized eth_getLogs queries.
_LIMIT_EXCEEDED_CODE = -32005


class ChainError(Exception):
    """Base class for everything raised by ``chain``."""


class RpcUnavailable(ChainError):
    """The node was unreachable, too slow, overloaded or rate limiting; retry later."""


class RpcError(ChainError):
    """The node answered a request with an error."""

    def __init__(self, message: str, *, method: str = "", code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.method = method
        self.code = code


class RangeTooLarge(RpcError):
    """``eth_getLogs`` exceeded a provider limit; ask for a smaller block range."""


class ExecutionReverted(RpcError):
    """The EVM reverted. ``reason`` is the decoded ``require`` message when there is one."""

    def __init__(
        self,
        message: str,
        *,
        method: str = "",
        code: int | None = None,
        reason: str | None = None,
        data: str | None = None,
    ) -> None:
        super().__init__(message, method=method, code=code)
        self.reason = reason
        self.data = data


class TransactionRejected(RpcError):
    """The node refused a raw transaction before it reached a block."""

    def __init__(
        self, message: str, *, method: str = "", code: int | None = None, kind: RejectKind
    ) -> None:
        super().__init__(message, method=method, code=code)
        self.kind: RejectKind = kind


def decode_revert_reason(data: Any) -> str | None:
    """Decode ``Error(string)`` revert data (hex string or bytes); None when it is not one."""
    if isinstance(data, bytes | bytearray):
        hexdata = bytes(data).hex()
    elif isinstance(data, str):
        hexdata = data.removeprefix("0x")
    else:
        return None
    if not hexdata.startswith(_ERROR_STRING_SELECTOR):
        return None
    try:
        (reason,) = abi_decode(["string"], bytes.fromhex(hexdata[8:]))
    except Exception:  # malformed revert data is just "no reason"
        return None
    return str(reason)


def _reason_from_message(message: str) -> str | None:
    # Nodes spell it "execution reverted: <reason>" (geth, anvil) or "reverted: <reason>".
    lowered = message.lower()
    for prefix in ("execution reverted: ", "reverted: "):
        index = lowered.find(prefix)
        if index >= 0:
            reason = message[index + len(prefix) :].strip()
            return reason or None
    return None


def classify_rpc_error(method: str, error: Any) -> RpcError:
    """Turn a JSON-RPC ``error`` object (``{code, message, data}``) into an ``RpcError``."""
    if isinstance(error, dict):
        raw_code = error.get("code")
        code = raw_code if isinstance(raw_code, int) else None
        message = str(error.get("message") or "")
        data = error.get("data")
    else:
        code, message, data = None, str(error), None
    lowered = message.lower()

    if method == "eth_getLogs" and (
        code == _LIMIT_EXCEEDED_CODE or any(hint in lowered for hint in _RANGE_TOO_LARGE_HINTS)
    ):
        return RangeTooLarge(message, method=method, code=code)

    # Revert data may sit in `data` directly or nested (`{"data": "0x..."}`) depending on node.
    revert_data = data.get("data") if isinstance(data, dict) else data
    if code == 3 or "revert" in lowered:
        reason = decode_revert_reason(revert_data) or _reason_from_message(message)
        hexdata = revert_data if isinstance(revert_data, str) else None
        return ExecutionReverted(message, method=method, code=code, reason=reason, data=hexdata)

    if method == "eth_sendRawTransaction":
        kind: RejectKind = "other"
        for hint, hint_kind in _REJECT_HINTS:
            if hint in lowered:
                kind = hint_kind
                break
        return TransactionRejected(message, method=method, code=code, kind=kind)

    return RpcError(message, method=method, code=code)
