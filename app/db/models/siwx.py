from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from app.db.columns import created_at
from app.db.types import UTCDateTime


class SiwxNonce(SQLModel, table=True):
    """A sign-in-with-x nonce that has been used: the primary key makes it single-use.

    Nonces are issued without a row (they carry their own MAC, ``app.siwx.challenge``); a row is
    written only when a signed message spends one, and is purged once the message it was issued
    for has expired (an expired message is refused before its nonce is looked at).
    """

    __tablename__ = "siwx_nonces"

    nonce: str = Field(primary_key=True, max_length=32)
    # Lower-case hex of the wallet that signed it (for the operator; never used to grant).
    address: str = Field(max_length=42)
    expires_at: datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False, index=True))
    used_at: datetime = created_at()
