"""A platform's own webhook endpoints (``/v1/platform/webhooks``, ``X-Master-Key``, audited).

The operator's routes over every endpoint are :mod:`app.webhooks.admin_routes`.
"""

from __future__ import annotations

from litestar import Router, delete, get, patch, post
from litestar.params import Parameter

from app.audit.service import Actor
from app.auth.guards import MASTER
from app.auth.principal import Principal
from app.db.paging import Page, page_params
from app.db.uow import UnitOfWork
from app.webhooks import service
from app.webhooks.options import Options
from app.webhooks.schemas import (
    CreatedEndpoint,
    CreateEndpointBody,
    EndpointView,
    ReplayBody,
    ReplayView,
    RotatedSecret,
    TestSent,
    UpdateEndpointBody,
)
from app.webhooks.service import Owner


@post("/", status_code=201, errors=(409,))
async def create_endpoint(session: UnitOfWork, webhook_options: Options, actor: Actor,
                          principal: Principal, data: CreateEndpointBody) -> CreatedEndpoint:
    """Register an endpoint. The URL must reach a public address (SSRF guard); the ``whsec_``
    signing secret is in this response only."""
    return await service.create_endpoint(session, webhook_options, actor,
                                         Owner.platform(principal), data)


@get("/")
async def list_endpoints(
    session: UnitOfWork, principal: Principal,
    limit: int | None = Parameter(default=None), cursor: str | None = Parameter(default=None),
    enabled: bool | None = Parameter(default=None),
) -> Page:
    """The platform's endpoints, newest first."""
    return await service.list_endpoints(
        session, page_params(limit, cursor), platform_id=Owner.platform(principal).platform_id,
        enabled=enabled,
    )


@get("/{endpoint_id:str}")
async def get_endpoint(session: UnitOfWork, principal: Principal,
                       endpoint_id: str) -> EndpointView:
    """One of the platform's endpoints."""
    return await service.get_endpoint(session, Owner.platform(principal), endpoint_id)


@patch("/{endpoint_id:str}")
async def update_endpoint(session: UnitOfWork, webhook_options: Options, actor: Actor,
                          principal: Principal, endpoint_id: str,
                          data: UpdateEndpointBody) -> EndpointView:
    """Change URL, description, event types; ``enabled: false`` pauses it (pending messages
    fail and can be replayed), ``true`` resumes it."""
    return await service.update_endpoint(session, webhook_options, actor,
                                         Owner.platform(principal), endpoint_id, data)


@delete("/{endpoint_id:str}", status_code=200)
async def delete_endpoint(session: UnitOfWork, actor: Actor, principal: Principal,
                          endpoint_id: str) -> EndpointView:
    """Remove the endpoint and its delivery history."""
    return await service.delete_endpoint(session, actor, Owner.platform(principal), endpoint_id)


@post("/{endpoint_id:str}/rotate-secret", status_code=200)
async def rotate_secret(session: UnitOfWork, webhook_options: Options, actor: Actor,
                        principal: Principal, endpoint_id: str) -> RotatedSecret:
    """A new secret (shown once); the old one keeps signing beside it for 24 hours."""
    return await service.rotate_secret(session, webhook_options, actor,
                                       Owner.platform(principal), endpoint_id)


@post("/{endpoint_id:str}/test", status_code=202, errors=(409,))
async def send_test(session: UnitOfWork, actor: Actor, principal: Principal,
                    endpoint_id: str) -> TestSent:
    """Send a ``webhook.test`` event to this endpoint only."""
    return await service.send_test(session, actor, Owner.platform(principal), endpoint_id)


@get("/{endpoint_id:str}/deliveries")
async def list_deliveries(
    session: UnitOfWork, principal: Principal, endpoint_id: str,
    limit: int | None = Parameter(default=None), cursor: str | None = Parameter(default=None),
    status: str | None = Parameter(default=None),
    event_type: str | None = Parameter(query="eventType", default=None),
) -> Page:
    """Messages to this endpoint, newest first, each with its attempts."""
    return await service.list_deliveries(session, Owner.platform(principal), endpoint_id,
                                         limit, cursor, status=status, event_type=event_type)


@post("/{endpoint_id:str}/replay", status_code=202, errors=(409,))
async def replay(session: UnitOfWork, webhook_options: Options, actor: Actor,
                 principal: Principal, endpoint_id: str, data: ReplayBody) -> ReplayView:
    """Re-send failed messages created since ``since``, at a bounded rate."""
    return await service.replay_failed(session, webhook_options, actor,
                                       Owner.platform(principal), endpoint_id, data)


router = Router(
    path="/v1/platform/webhooks",
    route_handlers=[
        create_endpoint, list_endpoints, get_endpoint, update_endpoint, delete_endpoint,
        rotate_secret, send_test, list_deliveries, replay,
    ],
    before_request=MASTER,
    tags=["platform webhooks"],
)
