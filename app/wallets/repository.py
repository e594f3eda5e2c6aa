"""The SQL of the wallets area: challenges and linked wallets."""

from __future__ import annotations

from collections.abc import Collection

from sqlmodel import col, select

from app.db.models.wallets import Wallet, WalletChallenge
from app.db.paging import PageParams
from app.db.queries import page
from app.db.uow import UnitOfWork


async def challenge_for(
    session: UnitOfWork, agent_id: str, address: str, message: str
) -> WalletChallenge | None:
    """The challenge with this exact message issued to the agent for the address."""
    return (
        await session.exec(
            select(WalletChallenge).where(
                col(WalletChallenge.agent_id) == agent_id,
                col(WalletChallenge.address) == address,
                col(WalletChallenge.message) == message,
            )
        )
    ).first()


async def by_address(session: UnitOfWork, address: str) -> Wallet | None:
    """The wallet linked with this (lower-case) address, whoever's it is."""
    return (await session.exec(select(Wallet).where(col(Wallet.address) == address))).first()


async def by_addresses(session: UnitOfWork, addresses: Collection[str]) -> list[Wallet]:
    """The linked wallets among these (lower-case) addresses."""
    rows = await session.exec(select(Wallet).where(col(Wallet.address).in_(addresses)))
    return list(rows.all())


async def find(session: UnitOfWork, wallet_id: str) -> Wallet | None:
    return await session.get(Wallet, wallet_id)


async def of_agent(
    session: UnitOfWork, agent_id: str, params: PageParams
) -> tuple[list[Wallet], str | None]:
    """A page of the agent's wallets, newest first."""
    stmt = select(Wallet).where(col(Wallet.agent_id) == agent_id)
    return await page(session, stmt, col(Wallet.id), params)
