"""What sign-in-with-x reads and writes: spent nonces, and what a wallet owns.

A wallet owns (a) the pass keys bought with a signed authorization (``exact``) from it, and
(b) the agent it is linked to (``wallets``). A pushed transfer proves nothing about who named
it, so its pass is not the sender's (as ``app.passes.service`` already decides).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from app.db.models.agents import Agent
from app.db.models.keys import ApiKey
from app.db.models.payments import Payment
from app.db.models.platforms import Platform
from app.db.models.siwx import SiwxNonce
from app.db.models.wallets import Wallet
from app.db.uow import UnitOfWork


async def spend_nonce(
    session: UnitOfWork, nonce: str, address: str, expires_at: datetime, now: datetime
) -> bool:
    """Record ``nonce`` as used; False when it already was (the insert is committed here, so
    two processes racing with the same nonce cannot both succeed). Nonces of expired
    challenges are purged on the way: their messages are refused before this is reached."""
    await session.execute(delete(SiwxNonce).where(col(SiwxNonce.expires_at) < now))
    session.add(SiwxNonce(nonce=nonce, address=address, expires_at=expires_at, used_at=now))
    try:
        await session.commit()
    except IntegrityError:
        await session.rollback()
        return False
    return True


async def active_pass_key(session: UnitOfWork, address: str, now: datetime) -> str | None:
    """The id of the live pass key bought from ``address`` that lasts longest, if any."""
    stmt = (
        select(ApiKey.id)
        .join(Payment, col(Payment.result_key_id) == col(ApiKey.id))
        .where(
            col(Payment.payer) == address,
            col(Payment.purpose) == "pass",
            col(Payment.scheme) == "exact",
            col(Payment.status) == "settled",
            col(ApiKey.kind) == "pass",
            col(ApiKey.status) == "active",
            col(ApiKey.expires_at) > now,
        )
        .order_by(col(ApiKey.expires_at).desc())
        .limit(1)
    )
    return (await session.exec(stmt)).first()


async def linked_wallet(session: UnitOfWork, address: str) -> Wallet | None:
    return (await session.exec(select(Wallet).where(col(Wallet.address) == address))).first()


async def agent(session: UnitOfWork, agent_id: str | None) -> Agent | None:
    return await session.get(Agent, agent_id) if agent_id else None


async def platform(session: UnitOfWork, platform_id: str | None) -> Platform | None:
    return await session.get(Platform, platform_id) if platform_id else None
