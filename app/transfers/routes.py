"""Operator routes for the chain: transfers, watchers, settlements (``/admin/v1``, audited)."""

from __future__ import annotations

from typing import Any

from litestar import Request, Router, get, post
from litestar.params import Parameter

from app.audit.service import Actor, record
from app.auth.guards import ADMIN, principal_of
from app.auth.principal import Principal
from app.db.models.transfers import TRANSFER_STATUSES
from app.db.paging import Page, page_params
from app.db.types import utcnow
from app.db.uow import UnitOfWork
from app.errors import NotFound, ValidationFailed
from app.http.request_id import request_id_of
from app.settings import Settings
from app.signer import service as settlement
from app.signer.service import SettlementOutcome
from app.transfers import service as transfers
from app.transfers.schemas import (
    AssignBody,
    RewindBody,
    RewindView,
    TransferView,
    WatcherView,
)
from app.transfers.views import transfer_view, watcher_view
from app.transfers.watcher import start_block
from chain.networks import Network

AnyRequest = Request[Any, Any, Any]


def _actor(request: AnyRequest, admin: Principal) -> Actor:
    return Actor("admin", admin.key_id, None, request_id_of(request))


def _network(settings: Settings, name: str) -> Network:
    network = settings.networks().get(name)
    if network is None:
        raise NotFound(f"No enabled network named {name!r}.")
    return network


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


@post("/transfers/{transfer_id:str}/assign", status_code=200, errors=(409,))
async def assign_transfer(
    request: AnyRequest, session: UnitOfWork, transfer_id: str,
    data: AssignBody,
) -> TransferView:
    """Credit an unmatched deposit to an agent (e.g. its wallet was linked after it paid)."""
    admin = principal_of(request)
    transfer = await transfers.get(session, transfer_id)
    before = transfers.snapshot(transfer)
    await transfers.assign(session, transfer, data.agent_id, data.reason)
    await record(session, _actor(request, admin), "transfer.assign", "transfer", transfer.id,
                 before=before, after={**transfers.snapshot(transfer), "reason": data.reason})
    return transfer_view(transfer)


# -- watchers ----------------------------------------------------------------------------


async def _watcher_views(settings: Settings, session: UnitOfWork) -> list[WatcherView]:
    networks = settings.networks()
    states = await transfers.watcher_states(session, list(networks))
    now = utcnow()
    return [
        watcher_view(network, states.get(name), now, settings.chain_unhealthy_after_seconds)
        for name, network in networks.items()
    ]


@get("/chain/watchers")
async def list_watchers(settings: Settings, session: UnitOfWork) -> list[WatcherView]:
    """Every enabled network's watcher: head, cursor, lag, last error, reorgs."""
    return await _watcher_views(settings, session)


@post("/chain/watchers/{network:str}/rewind", status_code=200, errors=(409,))
async def rewind_watcher(
    request: AnyRequest, session: UnitOfWork, settings: Settings, network: str,
    data: RewindBody,
) -> RewindView:
    """Scan again from ``block`` (e.g. a provider missed logs). Stored transfers are kept; the
    re-scan adds what was missing and changes nothing else."""
    admin = principal_of(request)
    found = _network(settings, network)
    state, previous = await transfers.rewind(session, found.name, found.chain_id, data.block,
                                             start_block=start_block(settings, found))
    await record(session, _actor(request, admin), "chain_watcher.rewind", "chain_watcher",
                 found.name, before={"cursor": previous},
                 after={"cursor": state.cursor, "reason": data.reason})
    view = watcher_view(found, state, utcnow(), settings.chain_unhealthy_after_seconds)
    return RewindView(watcher=view, previous_cursor=previous)


# -- settlements -------------------------------------------------------------------------


@get("/settlements")
async def list_settlements(
    session: UnitOfWork,
    limit: int | None = Parameter(default=None), cursor: str | None = Parameter(default=None),
    network: str | None = Parameter(default=None, max_length=20),
    status: str | None = Parameter(default=None, max_length=16),
    payer: str | None = Parameter(default=None, max_length=42),
) -> Page:
    """What the settlement signer was asked to submit, and how each ended."""
    rows, next_cursor = await settlement.search(
        session, page_params(limit, cursor), network=network, status=status, authorizer=payer
    )
    return Page(data=[settlement.outcome_view(s) for s in rows], next_cursor=next_cursor)


@get("/settlements/{submission_id:str}")
async def get_settlement(
    session: UnitOfWork, submission_id: str
) -> SettlementOutcome:
    return await settlement.outcome(session, submission_id)


router = Router(
    path="/admin/v1",
    route_handlers=[
        list_transfers, get_transfer, assign_transfer, list_watchers, rewind_watcher,
        list_settlements, get_settlement,
    ],
    before_request=ADMIN,
    tags=["admin", "chain"],
)
