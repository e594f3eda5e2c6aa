from __future__ import annotations

from typing import Annotated

import msgspec

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
