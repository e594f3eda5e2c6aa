"""Wallet linking for deposits (key holders)."""

from __future__ import annotations

from datetime import timedelta

from litestar import Router, delete, get, post
from litestar.params import Parameter

from app.auth.guards import key_holder
from app.auth.principal import Principal
from app.credentials.scopes import WALLETS_READ, WALLETS_WRITE
from app.db.paging import Page, page_params
from app.db.uow import UnitOfWork
from app.settings import Settings
from app.wallets import service as wallets
from app.wallets.schemas import (
    ChallengeBody,
    ChallengeView,
    LinkBody,
    WalletView,
    challenge_view,
    wallet_view,
)


@post("/challenge", before_request=key_holder(WALLETS_WRITE), status_code=201)
async def create_challenge(
    session: UnitOfWork, settings: Settings, principal: Principal, data: ChallengeBody
) -> ChallengeView:
    """A one-time message to sign with the wallet (EIP-191 ``personal_sign``), valid 10 min."""
    ttl = timedelta(seconds=settings.wallet_challenge_seconds)
    item = await wallets.challenge(session, principal.agent_id or "", data.address, ttl)
    return challenge_view(item)


@post("/", before_request=key_holder(WALLETS_WRITE), status_code=201, errors=(409,))
async def link_wallet(session: UnitOfWork, principal: Principal, data: LinkBody) -> WalletView:
    """Link a wallet by presenting the signed challenge."""
    return wallet_view(await wallets.link(session, principal.agent_id or "", data.address,
                                          data.message, data.signature))


@get("/", before_request=key_holder(WALLETS_READ))
async def list_wallets(
    session: UnitOfWork, principal: Principal,
    limit: int | None = Parameter(default=None), cursor: str | None = Parameter(default=None),
) -> Page:
    """The agent's linked wallets, newest first."""
    rows, next_cursor = await wallets.list_wallets(session, principal.agent_id or "",
                                                   page_params(limit, cursor))
    return Page(data=[wallet_view(w) for w in rows], next_cursor=next_cursor)


@delete("/{wallet_id:str}", before_request=key_holder(WALLETS_WRITE), status_code=200)
async def unlink_wallet(session: UnitOfWork, principal: Principal, wallet_id: str) -> WalletView:
    """Unlink one of the agent's wallets."""
    return wallet_view(await wallets.unlink(session, principal.agent_id or "", wallet_id))


router = Router(
    path="/v1/wallets",
    route_handlers=[create_challenge, link_wallet, list_wallets, unlink_wallet],
    tags=["wallets"],
)
