"""Decoding raw JSON-RPC answers into ``chain.records``: typed and cheap, because a backfill
decodes tens of thousands of logs per range (see ``RawLog``)."""

from __future__ import annotations

import functools
import json
from typing import Any, TypeVar

import httpx
import msgspec
from eth_utils.address import to_checksum_address

from chain.errors import RpcError, RpcUnavailable
from chain.records import BlockHeader, TransferLog
from chain.usdc import AUTHORIZATION_USED_TOPIC, TRANSFER_TOPIC, AuthorizationUse

_T = TypeVar("_T")


def json_body(response: httpx.Response) -> Any:
    status = response.status_code
    try:
        decoded = json.loads(response.content)
    except ValueError:
        decoded = None
    if isinstance(decoded, dict | list):
        # A JSON-RPC body is authoritative even on HTTP 4xx/5xx: it says what went wrong.
        return decoded
    if status >= 500:
        raise RpcUnavailable(f"RPC answered HTTP {status}")
    raise RpcError(f"RPC answered HTTP {status} without a JSON-RPC body")


class RawLog(msgspec.Struct, gc=False, rename="camel"):
    """The fields of a JSON-RPC log that a Transfer needs (the rest of each log is skipped
    while parsing). Typed decoding is several times cheaper than ``json.loads`` into dicts,
    and ``gc=False`` rows (only strings inside) are never traversed by the garbage collector:
    a backfill's tens of thousands of logs would otherwise set off full collections."""

    block_number: str
    block_hash: str
    transaction_hash: str
    log_index: str
    topics: tuple[str, ...]
    data: str


class LogsAnswer(msgspec.Struct):
    result: list[RawLog] | None = None
    error: Any = None


LOGS_ANSWER = msgspec.json.Decoder(LogsAnswer)


class ScanAnswer(msgspec.Struct):
    """One answer of the logs-and-header batch: logs (a list) or a block (an object)."""

    id: int | str | None = None
    result: list[RawLog] | dict[str, Any] | None = None
    error: Any = None


# A whole batch refused at once comes back as one object instead of a list.
SCAN_ANSWER = msgspec.json.Decoder(list[ScanAnswer] | ScanAnswer)
SCAN_LOGS_ID, SCAN_HEADER_ID = 1, 2


def address_topic(address: str) -> str:
    return "0x" + "00" * 12 + checksum(address)[2:].lower()


def transfers_of(logs: list[RawLog]) -> list[TransferLog]:
    transfers = []
    try:
        for log in logs:
            topics = log.topics
            # An ERC-721 Transfer has the same topic0 but four topics; only ERC-20 has three.
            if len(topics) == 3 and topics[0].lower() == TRANSFER_TOPIC:
                transfers.append(TransferLog(
                    block_number=int(log.block_number, 16),
                    block_hash=log.block_hash.lower(),
                    tx_hash=log.transaction_hash.lower(),
                    log_index=int(log.log_index, 16),
                    from_address=checksum("0x" + topics[1][-40:]),
                    to_address=checksum("0x" + topics[2][-40:]),
                    value=int(log.data[2:66] or "0", 16),
                ))
    except (ValueError, TypeError, IndexError) as exc:
        raise RpcError("eth_getLogs: malformed log", method="eth_getLogs") from exc
    transfers.sort(key=log_order)
    return transfers


def decode_answer(decoder: msgspec.json.Decoder[_T], response: httpx.Response) -> _T:
    try:
        return decoder.decode(response.content)
    except msgspec.ValidationError as exc:
        raise RpcError("eth_getLogs: malformed log", method="eth_getLogs") from exc
    except msgspec.DecodeError:
        json_body(response)  # not JSON: raises what any other call would
        raise RpcError("eth_getLogs: unexpected response", method="eth_getLogs") from None


def decode_header(data: Any) -> BlockHeader | None:
    if data is None:
        return None
    try:
        base_fee = data.get("baseFeePerGas")
        return BlockHeader(
            number=int(data["number"], 16),
            hash=str(data["hash"]).lower(),
            parent_hash=str(data["parentHash"]).lower(),
            timestamp=int(data["timestamp"], 16),
            base_fee_per_gas=None if base_fee is None else int(base_fee, 16),
        )
    except (AttributeError, KeyError, ValueError, TypeError) as exc:
        raise RpcError(
            "eth_getBlockByNumber: malformed block", method="eth_getBlockByNumber"
        ) from exc


@functools.lru_cache(maxsize=65_536)
def checksum(address: str) -> str:
    # Checksumming costs a keccak (~80 us); the same few addresses recur in every batch.
    return str(to_checksum_address(address))


def log_order(transfer: TransferLog) -> tuple[int, int]:
    return transfer.block_number, transfer.log_index


def is_transfer(log: dict[str, Any]) -> bool:
    # An ERC-721 Transfer has the same topic0 but four topics; only ERC-20 has three.
    topics = log["topics"]
    return len(topics) == 3 and str(topics[0]).lower() == TRANSFER_TOPIC


def is_authorization_use(log: dict[str, Any]) -> bool:
    topics = log["topics"]
    return len(topics) == 3 and str(topics[0]).lower() == AUTHORIZATION_USED_TOPIC


def decode_authorization_use(log: dict[str, Any]) -> AuthorizationUse:
    """``AuthorizationUsed(address indexed authorizer, bytes32 indexed nonce)``."""
    topics = log["topics"]
    nonce = str(topics[2]).lower()
    if len(nonce) != 66:
        raise ValueError("an AuthorizationUsed nonce is 32 bytes")
    return AuthorizationUse(authorizer="0x" + str(topics[1])[-40:].lower(), nonce=nonce)


def decode_transfer(log: dict[str, Any]) -> TransferLog:
    """Decode a raw JSON-RPC log (hex strings) of an ERC-20 Transfer."""
    topics = log["topics"]
    data = str(log["data"])
    return TransferLog(
        block_number=int(log["blockNumber"], 16),
        block_hash=str(log["blockHash"]).lower(),
        tx_hash=str(log["transactionHash"]).lower(),
        log_index=int(log["logIndex"], 16),
        from_address=checksum("0x" + str(topics[1])[-40:]),
        to_address=checksum("0x" + str(topics[2])[-40:]),
        value=int(data[2:66] or "0", 16),
    )
