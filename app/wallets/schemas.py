"""Wallets on the wire: request bodies, views, and the conversions from rows to views."""

from __future__ import annotations

from typing import Annotated

import msgspec
from eth_utils.address import to_checksum_address

from app.db.models.wallets import Wallet, WalletChallenge
from app.db.types import rfc3339

Address = Annotated[str, msgspec.Meta(pattern=r"^0x[0-9a-fA-F]{40}$")]
Signature = Annotated[str, msgspec.Meta(pattern=r"^(0x)?[0-9a-fA-F]{130}$")]


class ChallengeBody(msgspec.Struct, forbid_unknown_fields=True):
    address: Address


class ChallengeView(msgspec.Struct, rename="camel"):
    address: str
    nonce: str
    message: str
    expires_at: str


class LinkBody(msgspec.Struct, forbid_unknown_fields=True):
    address: Address
    message: Annotated[str, msgspec.Meta(min_length=1, max_length=1000)]
    signature: Signature


class WalletView(msgspec.Struct, rename="camel"):
    id: str
    address: str
    linked_at: str


def wallet_view(wallet: Wallet) -> WalletView:
    return WalletView(id=wallet.id, address=to_checksum_address(wallet.address),
                      linked_at=rfc3339(wallet.created_at) or "")


def challenge_view(item: WalletChallenge) -> ChallengeView:
    return ChallengeView(address=to_checksum_address(item.address), nonce=item.nonce,
                         message=item.message, expires_at=rfc3339(item.expires_at) or "")
