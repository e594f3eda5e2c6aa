"""The operator's webhook routes (``/admin/v1/webhooks``, audited): its own endpoints, which
receive every platform's events (filtered by type) and the operator-only
``webhook.endpoint_disabled``, and every platform's endpoints and messages."""

from __future__ import annotations

from litestar import Router, delete, get, patch, post
from litestar.params import Parameter

from app.audit.service import Actor
from app.auth.guards import ADMIN
from app.db.paging import Page, page_params
from app.db.uow import UnitOfWork
from app.webhooks import service
from app.webhooks.options import Options
from app.webhooks.schemas import (
    CreatedEndpoint,
    CreateEndpointBody,
    DeliveryView,
    EndpointView,
    ReplayBody,
    ReplayView,
    RotatedSecret,
    TestSent,
    UpdateEndpointBody,
)
from app.webhooks.service import OPERATOR


@post("/", status_code=201, errors=(404, 409))
async def admin_create_endpoint(session: UnitOfWork, webhook_options: Options,
                                actor: Actor, data: CreateEndpointBody) -> CreatedEndpoint:
    """An operator endpoint: it receives every platform's events (filtered by type) and the
    operator-only ``webhook.endpoint_disabled``."""
    return await service.create_endpoint(session, webhook_options, actor, OPERATOR, data)


@get("/")
async def admin_list_endpoints(
    session: UnitOfWork,
    limit: int | None = Parameter(default=None), cursor: str | None = Parameter(default=None),
    platform_id: str | None = Parameter(query="platformId", default=None),
    operator: bool = Parameter(default=False),
    enabled: bool | None = Parameter(default=None),
) -> Page:
    """Every endpoint (filter by platform, operator-owned, enabled; ``enabled=false`` lists the
    disabled ones with their reason)."""
    return await service.list_endpoints(
        session, page_params(limit, cursor), platform_id=platform_id, operator_only=operator,
        enabled=enabled,
    )


@get("/{endpoint_id:str}")
async def admin_get_endpoint(session: UnitOfWork, endpoint_id: str) -> EndpointView:
    """Any endpoint."""
    return await service.get_endpoint(session, OPERATOR, endpoint_id)


@patch("/{endpoint_id:str}")
async def admin_update_endpoint(session: UnitOfWork, webhook_options: Options,
                                actor: Actor, endpoint_id: str,
                                data: UpdateEndpointBody) -> EndpointView:
    """Change any endpoint, e.g. re-enable one passgate disabled."""
    return await service.update_endpoint(session, webhook_options, actor, OPERATOR,
                                         endpoint_id, data)


@delete("/{endpoint_id:str}", status_code=200)
async def admin_delete_endpoint(session: UnitOfWork, actor: Actor,
                                endpoint_id: str) -> EndpointView:
    """Remove any endpoint and its delivery history."""
    return await service.delete_endpoint(session, actor, OPERATOR, endpoint_id)


@post("/{endpoint_id:str}/rotate-secret", status_code=200)
async def admin_rotate_secret(session: UnitOfWork, webhook_options: Options,
                              actor: Actor, endpoint_id: str) -> RotatedSecret:
    """A new secret for any endpoint (shown once); the old one signs beside it for 24 hours."""
    return await service.rotate_secret(session, webhook_options, actor, OPERATOR, endpoint_id)


@post("/{endpoint_id:str}/test", status_code=202, errors=(409,))
async def admin_send_test(session: UnitOfWork, actor: Actor, endpoint_id: str) -> TestSent:
    """Send a ``webhook.test`` event to this endpoint only."""
    return await service.send_test(session, actor, OPERATOR, endpoint_id)


@get("/{endpoint_id:str}/deliveries")
async def admin_list_deliveries(
    session: UnitOfWork, endpoint_id: str,
    limit: int | None = Parameter(default=None), cursor: str | None = Parameter(default=None),
    status: str | None = Parameter(default=None),
    event_type: str | None = Parameter(query="eventType", default=None),
) -> Page:
    """Messages to any endpoint, newest first, each with its attempts."""
    return await service.list_deliveries(session, OPERATOR, endpoint_id, limit, cursor,
                                         status=status, event_type=event_type)


@post("/{endpoint_id:str}/replay", status_code=202, errors=(409,))
async def admin_replay(session: UnitOfWork, webhook_options: Options, actor: Actor,
                       endpoint_id: str, data: ReplayBody) -> ReplayView:
    """Re-send an endpoint's failed messages created since ``since``, at a bounded rate."""
    return await service.replay_failed(session, webhook_options, actor, OPERATOR, endpoint_id,
                                       data)


@get("/messages/{message_id:str}")
async def admin_get_message(session: UnitOfWork, message_id: str) -> DeliveryView:
    """One message with its attempts."""
    return await service.get_message(session, message_id)


@post("/messages/{message_id:str}/replay", status_code=202, errors=(409,))
async def admin_replay_message(session: UnitOfWork, actor: Actor,
                               message_id: str) -> DeliveryView:
    """Send one delivered or failed message again (same ``webhook-id``, same body)."""
    return await service.replay_message(session, actor, message_id)


router = Router(
    path="/admin/v1/webhooks",
    route_handlers=[
        admin_create_endpoint, admin_list_endpoints, admin_get_endpoint, admin_update_endpoint,
        admin_delete_endpoint, admin_rotate_secret, admin_send_test, admin_list_deliveries,
        admin_replay, admin_get_message, admin_replay_message,
    ],
    before_request=ADMIN,
    tags=["admin webhooks"],
)
