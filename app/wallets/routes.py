"""Wallet linking for deposits (key holders)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from eth_utils.address import to_checksum_address
from litestar import Request, Router, delete, get, post
from litestar.params import Parameter

from app.auth.guards import key_holder, principal_of, runtime_of
from app.credentials.scopes import WALLETS_READ, WALLETS_WRITE
from app.db.models.wallets import Wallet
from app.db.paging import Page, page_params
from app.db.types import rfc3339
from app.db.uow import UnitOfWork
from app.wallets import service as wallets
from app.wallets.schemas import ChallengeBody, ChallengeView, LinkBody, WalletView


def _view(wallet: Wallet) -> WalletView:
    return WalletView(id=wallet.id, address=to_checksum_address(wallet.address),
                      linked_at=rfc3339(wallet.created_at) or "")


AnyRequest = Request[Any, Any, Any]


@post("/challenge", before_request=key_holder(WALLETS_WRITE), status_code=201)
async def create_challenge(
    request: AnyRequest, session: UnitOfWork, data: ChallengeBody
) -> ChallengeView:
    """A one-time message to sign with the wallet (EIP-191 ``personal_sign``), valid 10 min."""
    caller = principal_of(request)
    ttl = timedelta(seconds=runtime_of(request).settings.wallet_challenge_seconds)
    item = await wallets.challenge(session, caller.agent_id or "", data.address, ttl)
    return ChallengeView(address=to_checksum_address(item.address), nonce=item.nonce,
                         message=item.message, expires_at=rfc3339(item.expires_at) or "")


@post("/", before_request=key_holder(WALLETS_WRITE), status_code=201, errors=(409,))
async def link_wallet(request: AnyRequest, session: UnitOfWork, data: LinkBody) -> WalletView:
    """Link a wallet by presenting the signed challenge."""
    caller = principal_of(request)
    return _view(await wallets.link(session, caller.agent_id or "", data.address, data.message,
                                    data.signature))


@get("/", before_request=key_holder(WALLETS_READ))
async def list_wallets(
    request: AnyRequest, session: UnitOfWork,
    limit: int | None = Parameter(default=None), cursor: str | None = Parameter(default=None),
) -> Page:
    caller = principal_of(request)
    rows, next_cursor = await wallets.list_wallets(session, caller.agent_id or "",
                                                   page_params(limit, cursor))
    return Page(data=[_view(w) for w in rows], next_cursor=next_cursor)


@delete("/{wallet_id:str}", before_request=key_holder(WALLETS_WRITE), status_code=200)
async def unlink_wallet(request: AnyRequest, session: UnitOfWork, wallet_id: str) -> WalletView:
    caller = principal_of(request)
    return _view(await wallets.unlink(session, caller.agent_id or "", wallet_id))


router = Router(
    path="/v1/wallets",
    route_handlers=[create_challenge, link_wallet, list_wallets, unlink_wallet],
    tags=["wallets"],
)
