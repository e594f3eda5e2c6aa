"""Link wallets to agents with an EIP-191 signed, one-time, expiring challenge."""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from datetime import timedelta

from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils.address import to_checksum_address
from sqlalchemy.exc import IntegrityError

from app.db.models.wallets import Wallet, WalletChallenge
from app.db.paging import PageParams
from app.db.types import rfc3339, utcnow
from app.db.uow import UnitOfWork
from app.errors import Conflict, NotFound, ValidationFailed
from app.ids import new_id
from app.wallets import repository

CHALLENGE_TTL = timedelta(minutes=10)


def _message(agent_id: str, address: str, nonce: str, issued: str, expires: str) -> str:
    return (
        f"passgate: link wallet {to_checksum_address(address)} to agent {agent_id}.\n\n"
        f"Nonce: {nonce}\nIssued At: {issued}\nExpiration Time: {expires}"
    )


async def challenge(
    session: UnitOfWork, agent_id: str, address: str, ttl: timedelta = CHALLENGE_TTL
) -> WalletChallenge:
    """A one-time message for the agent to sign with the wallet, valid for ``ttl``."""
    now = utcnow()
    nonce = secrets.token_hex(16)
    expires = now + ttl
    item = WalletChallenge(
        id=new_id("wch"),
        agent_id=agent_id,
        address=address.lower(),
        nonce=nonce,
        message=_message(agent_id, address, nonce, rfc3339(now) or "", rfc3339(expires) or ""),
        expires_at=expires,
    )
    session.add(item)
    await session.flush()
    return item


def _recover(message: str, signature: str) -> str | None:
    try:
        signer: str = Account.recover_message(encode_defunct(text=message), signature=signature)
    except Exception:  # eth-account raises several types for a malformed signature
        return None
    return signer.lower()


async def link(
    session: UnitOfWork, agent_id: str, address: str, message: str, signature: str
) -> Wallet:
    """Verify the signed challenge and link the address (each challenge works once)."""
    address = address.lower()
    found = await repository.challenge_for(session, agent_id, address, message)
    if found is None:
        raise ValidationFailed("message is not a challenge issued to this agent for this address; "
                               "request one with POST /v1/wallets/challenge.")
    if found.used_at is not None:
        raise ValidationFailed("This challenge was already used; request a new one.")
    if found.expires_at <= utcnow():
        raise ValidationFailed("This challenge has expired; request a new one.")
    if _recover(message, signature) != address:
        raise ValidationFailed("signature was not made by this address over this message.")
    found.used_at = utcnow()
    session.add(found)
    existing = await repository.by_address(session, address)
    if existing is not None:
        owner = "this agent" if existing.agent_id == agent_id else "another agent"
        raise Conflict(f"This wallet is already linked to {owner}.")
    wallet = Wallet(id=new_id("wal"), agent_id=agent_id, address=address)
    session.add(wallet)
    try:
        await session.flush()
    except IntegrityError:
        raise Conflict("This wallet is already linked.") from None
    return wallet


async def list_wallets(
    session: UnitOfWork, agent_id: str, params: PageParams
) -> tuple[list[Wallet], str | None]:
    """The agent's linked wallets, newest first."""
    return await repository.of_agent(session, agent_id, params)


async def unlink(session: UnitOfWork, agent_id: str, wallet_id: str) -> Wallet:
    """Unlink one of the agent's wallets; another agent's is indistinguishable from a missing
    one."""
    wallet = await repository.find(session, wallet_id)
    if wallet is None or wallet.agent_id != agent_id:
        raise NotFound("Wallet not found.")
    await session.delete(wallet)
    await session.flush()
    return wallet


async def owner_of(session: UnitOfWork, address: str) -> str | None:
    """The agent a sending address belongs to, for crediting deposits."""
    wallet = await repository.by_address(session, address.lower())
    return wallet.agent_id if wallet else None


async def owners_of(session: UnitOfWork, addresses: Iterable[str]) -> dict[str, str]:
    """``{lower-case address: agent id}`` for the linked ones among ``addresses`` (one query,
    for crediting a batch of deposits)."""
    wanted = sorted({address.lower() for address in addresses})
    if not wanted:
        return {}
    return {wallet.address: wallet.agent_id
            for wallet in await repository.by_addresses(session, wanted)}
