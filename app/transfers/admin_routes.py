"""Operator routes for the chain watchers and the transfers they stored (``/admin/v1``)."""

from __future__ import annotations

from litestar import Router, get, post
from litestar.params import Parameter

from app.audit.service import Actor
from app.auth.guards import ADMIN
from app.db.models.transfers import TRANSFER_STATUSES
from app.db.paging import Page, page_params
from app.db.uow import UnitOfWork
from app.errors import ValidationFailed
from app.settings import Settings
from app.transfers import service as transfers
from app.transfers.schemas import RewindBody, RewindView, TransferView, WatcherView, transfer_view

# -- transfers ---------------------------------------------------------------------------


@get("/transfers")
async def list_transfers(
    session: UnitOfWork,
    limit: int | None = Parameter(default=None), cursor: str | None = Parameter(default=None),
    network: str | None = Parameter(default=None, max_length=20),
    status: str | None = Parameter(default=None, max_length=10),
    from_address: str | None = Parameter(query="from", default=None, max_length=42),
    to_address: str | None = Parameter(query="to", default=None, max_length=42),
    unmatched: bool | None = Parameter(default=None),
    agent_id: str | None = Parameter(query="agentId", default=None, max_length=40),
    tx_hash: str | None = Parameter(query="txHash", default=None, max_length=66),
) -> Page:
    """USDC transfers the watchers stored, newest first; ``unmatched=true`` lists deposits
    nobody could be credited for (and transfers no purpose claimed)."""
    if status is not None and status not in TRANSFER_STATUSES:
        raise ValidationFailed(f"status must be one of {', '.join(TRANSFER_STATUSES)}.")
    rows, next_cursor = await transfers.search(
        session, page_params(limit, cursor),
        transfers.TransferFilter(network=network, status=status, from_address=from_address,
                                 to_address=to_address, unmatched=unmatched, agent_id=agent_id,
                                 tx_hash=tx_hash),
    )
    return Page(data=[transfer_view(t) for t in rows], next_cursor=next_cursor)


@get("/transfers/{transfer_id:str}")
async def get_transfer(session: UnitOfWork, transfer_id: str) -> TransferView:
    return transfer_view(await transfers.get(session, transfer_id))


# -- watchers ----------------------------------------------------------------------------


@get("/chain/watchers")
async def list_watchers(settings: Settings, session: UnitOfWork) -> list[WatcherView]:
    """Every enabled network's watcher: head, cursor, lag, last error, reorgs."""
    return await transfers.watcher_views(session, settings)


@post("/chain/watchers/{network:str}/rewind", status_code=200, errors=(409,))
async def rewind_watcher(
    session: UnitOfWork, settings: Settings, actor: Actor, network: str, data: RewindBody,
) -> RewindView:
    """Scan again from ``block`` (e.g. a provider missed logs). Stored transfers are kept; the
    re-scan adds what was missing and changes nothing else."""
    return await transfers.rewind_watcher(session, settings, actor, network, data.block,
                                          data.reason)


router = Router(
    path="/admin/v1",
    route_handlers=[list_transfers, get_transfer, list_watchers, rewind_watcher],
    before_request=ADMIN,
    tags=["admin", "chain"],
)
