"""Webhook endpoint routes: a platform's own (``X-Master-Key``) and the operator's (admin).

Every mutation is written to the audit log. Secrets appear in exactly two responses: endpoint
creation and secret rotation.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Router, delete, get, patch, post
from litestar.params import Parameter

from app.audit.service import Actor, record
from app.auth.guards import ADMIN, MASTER, principal_of, runtime_of
from app.auth.principal import Principal
from app.db.models.webhooks import WebhookEndpoint
from app.db.paging import Page, page_params
from app.db.types import rfc3339
from app.db.uow import UnitOfWork
from app.http.request_id import request_id_of
from app.webhooks import service
from app.webhooks.options import WebhookOptions
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
from app.webhooks.views import created_endpoint_view, delivery_view, endpoint_view

AnyRequest = Request[Any, Any, Any]
_OPTIONS_KEY = "webhook_options"


def options_of(request: AnyRequest) -> WebhookOptions:
    """Built once per app from its settings (derives the sealing key)."""
    state = request.app.state
    options: WebhookOptions | None = state.get(_OPTIONS_KEY)
    if options is None:
        options = WebhookOptions.from_settings(runtime_of(request).settings)
        state[_OPTIONS_KEY] = options
    return options


# -- shared handlers' bodies -----------------------------------------------------------------


async def _create(request: AnyRequest, session: UnitOfWork, actor: Actor,
                  platform_id: str | None, data: CreateEndpointBody) -> CreatedEndpoint:
    created = await service.create(
        session, options_of(request), platform_id, url=data.url, description=data.description,
        event_types=list(data.event_types), enabled=data.enabled,
    )
    await record(session, actor, "webhook_endpoint.create", "webhook_endpoint",
                 created.endpoint.id, after=service.endpoint_snapshot(created.endpoint))
    return created_endpoint_view(created.endpoint, created.secret)


async def _update(request: AnyRequest, session: UnitOfWork, actor: Actor,
                  endpoint: WebhookEndpoint, data: UpdateEndpointBody) -> EndpointView:
    before = service.endpoint_snapshot(endpoint)
    await service.update_endpoint(session, options_of(request), endpoint, data.changes())
    await record(session, actor, "webhook_endpoint.update", "webhook_endpoint", endpoint.id,
                 before=before, after=service.endpoint_snapshot(endpoint))
    return endpoint_view(endpoint)


async def _delete(session: UnitOfWork, actor: Actor, endpoint: WebhookEndpoint) -> EndpointView:
    view = endpoint_view(endpoint)
    before = service.endpoint_snapshot(endpoint)
    await service.delete_endpoint(session, endpoint)
    await record(session, actor, "webhook_endpoint.delete", "webhook_endpoint", endpoint.id,
                 before=before)
    return view


async def _rotate(request: AnyRequest, session: UnitOfWork, actor: Actor,
                  endpoint: WebhookEndpoint) -> RotatedSecret:
    secret, until = await service.rotate_secret(session, options_of(request), endpoint)
    await record(session, actor, "webhook_endpoint.rotate_secret", "webhook_endpoint",
                 endpoint.id, after={"previousSecretExpiresAt": rfc3339(until)})
    return RotatedSecret(id=endpoint.id, secret=secret, previous_secret_expires_at=rfc3339(until))


async def _test(session: UnitOfWork, actor: Actor, endpoint: WebhookEndpoint) -> TestSent:
    message = await service.send_test(session, endpoint)
    await record(session, actor, "webhook_endpoint.test", "webhook_endpoint", endpoint.id,
                 after={"messageId": message.id})
    return TestSent(message_id=message.id, event_id=message.event_id, endpoint_id=endpoint.id,
                    status=message.status)


async def _deliveries(session: UnitOfWork, endpoint: WebhookEndpoint, limit: int | None,
                      cursor: str | None, status: str | None, event_type: str | None) -> Page:
    messages, attempts, next_cursor = await service.deliveries(
        session, endpoint.id, page_params(limit, cursor), status=status, event_type=event_type
    )
    return Page(data=[delivery_view(m, attempts[m.id]) for m in messages],
                next_cursor=next_cursor)


async def _replay(request: AnyRequest, session: UnitOfWork, actor: Actor,
                  endpoint: WebhookEndpoint, data: ReplayBody) -> ReplayView:
    options = options_of(request)
    replay = await service.replay_failed(session, options, endpoint, data.since)
    await record(session, actor, "webhook_endpoint.replay", "webhook_endpoint", endpoint.id,
                 after={"since": rfc3339(data.since), "replayed": replay.count})
    return ReplayView(
        endpoint_id=endpoint.id, replayed=replay.count, more=replay.more,
        rate_per_second=round(1 / options.replay_spacing, 3),
        first_attempt_at=rfc3339(replay.first_at), last_attempt_at=rfc3339(replay.last_at),
    )


# -- platform ---------------------------------------------------------------------------------


def _platform_actor(request: AnyRequest, master: Principal) -> Actor:
    return Actor("platform", master.key_id, master.platform_id, request_id_of(request))


async def _own(session: UnitOfWork, master: Principal, endpoint_id: str) -> WebhookEndpoint:
    # A master key always belongs to a platform; "" can match no endpoint.
    return await service.get(session, endpoint_id, master.platform_id or "")


@post("/", status_code=201, errors=(409,))
async def create_endpoint(request: AnyRequest, session: UnitOfWork,
                          data: CreateEndpointBody) -> CreatedEndpoint:
    """Register an endpoint. The URL must reach a public address (SSRF guard); the ``whsec_``
    signing secret is in this response only."""
    master = principal_of(request)
    return await _create(request, session, _platform_actor(request, master),
                         master.platform_id or "", data)


@get("/")
async def list_endpoints(
    request: AnyRequest,
    session: UnitOfWork,
    limit: int | None = Parameter(default=None), cursor: str | None = Parameter(default=None),
    enabled: bool | None = Parameter(default=None),
) -> Page:
    """The platform's endpoints, newest first."""
    master = principal_of(request)
    rows, next_cursor = await service.search(
        session, page_params(limit, cursor), platform_id=master.platform_id or "", enabled=enabled
    )
    return Page(data=[endpoint_view(e) for e in rows], next_cursor=next_cursor)


@get("/{endpoint_id:str}")
async def get_endpoint(
    request: AnyRequest, session: UnitOfWork, endpoint_id: str
) -> EndpointView:
    return endpoint_view(await _own(session, principal_of(request), endpoint_id))


@patch("/{endpoint_id:str}")
async def update_endpoint(request: AnyRequest, session: UnitOfWork,
                          endpoint_id: str, data: UpdateEndpointBody) -> EndpointView:
    """Change URL, description, event types; ``enabled: false`` pauses it (pending messages
    fail and can be replayed), ``true`` resumes it."""
    master = principal_of(request)
    endpoint = await _own(session, master, endpoint_id)
    return await _update(request, session, _platform_actor(request, master), endpoint, data)


@delete("/{endpoint_id:str}", status_code=200)
async def delete_endpoint(request: AnyRequest, session: UnitOfWork,
                          endpoint_id: str) -> EndpointView:
    """Remove the endpoint and its delivery history."""
    master = principal_of(request)
    endpoint = await _own(session, master, endpoint_id)
    return await _delete(session, _platform_actor(request, master), endpoint)


@post("/{endpoint_id:str}/rotate-secret", status_code=200)
async def rotate_secret(request: AnyRequest, session: UnitOfWork,
                        endpoint_id: str) -> RotatedSecret:
    """A new secret (shown once); the old one keeps signing beside it for 24 hours."""
    master = principal_of(request)
    endpoint = await _own(session, master, endpoint_id)
    return await _rotate(request, session, _platform_actor(request, master), endpoint)


@post("/{endpoint_id:str}/test", status_code=202, errors=(409,))
async def send_test(request: AnyRequest, session: UnitOfWork,
                    endpoint_id: str) -> TestSent:
    """Send a ``webhook.test`` event to this endpoint only."""
    master = principal_of(request)
    endpoint = await _own(session, master, endpoint_id)
    return await _test(session, _platform_actor(request, master), endpoint)


@get("/{endpoint_id:str}/deliveries")
async def list_deliveries(
    request: AnyRequest,
    session: UnitOfWork, endpoint_id: str,
    limit: int | None = Parameter(default=None), cursor: str | None = Parameter(default=None),
    status: str | None = Parameter(default=None),
    event_type: str | None = Parameter(query="eventType", default=None),
) -> Page:
    """Messages to this endpoint, newest first, each with its attempts."""
    master = principal_of(request)
    endpoint = await _own(session, master, endpoint_id)
    return await _deliveries(session, endpoint, limit, cursor, status, event_type)


@post("/{endpoint_id:str}/replay", status_code=202, errors=(409,))
async def replay(request: AnyRequest, session: UnitOfWork,
                 endpoint_id: str, data: ReplayBody) -> ReplayView:
    """Re-send failed messages created since ``since``, at a bounded rate."""
    master = principal_of(request)
    endpoint = await _own(session, master, endpoint_id)
    return await _replay(request, session, _platform_actor(request, master), endpoint, data)


platform_router = Router(
    path="/v1/platform/webhooks",
    route_handlers=[
        create_endpoint, list_endpoints, get_endpoint, update_endpoint, delete_endpoint,
        rotate_secret, send_test, list_deliveries, replay,
    ],
    before_request=MASTER,
    tags=["platform webhooks"],
)


# -- admin ------------------------------------------------------------------------------------


def _admin_actor(request: AnyRequest, admin: Principal) -> Actor:
    return Actor("admin", admin.key_id, None, request_id_of(request))


async def _any(session: UnitOfWork, endpoint_id: str) -> WebhookEndpoint:
    return await service.get(session, endpoint_id, any_owner=True)


@post("/", status_code=201, errors=(404, 409))
async def admin_create_endpoint(request: AnyRequest, session: UnitOfWork,
                                data: CreateEndpointBody) -> CreatedEndpoint:
    """An operator endpoint: it receives every platform's events (filtered by type) and the
    operator-only ``webhook.endpoint_disabled``."""
    admin = principal_of(request)
    return await _create(request, session, _admin_actor(request, admin), service.OPERATOR, data)


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
    rows, next_cursor = await service.search(
        session, page_params(limit, cursor), platform_id=platform_id, operator_only=operator,
        enabled=enabled,
    )
    return Page(data=[endpoint_view(e) for e in rows], next_cursor=next_cursor)


@get("/{endpoint_id:str}")
async def admin_get_endpoint(session: UnitOfWork,
                             endpoint_id: str) -> EndpointView:
    return endpoint_view(await _any(session, endpoint_id))


@patch("/{endpoint_id:str}")
async def admin_update_endpoint(request: AnyRequest, session: UnitOfWork,
                                endpoint_id: str, data: UpdateEndpointBody) -> EndpointView:
    """Change any endpoint, e.g. re-enable one passgate disabled."""
    admin = principal_of(request)
    endpoint = await _any(session, endpoint_id)
    return await _update(request, session, _admin_actor(request, admin), endpoint, data)


@delete("/{endpoint_id:str}", status_code=200)
async def admin_delete_endpoint(request: AnyRequest, session: UnitOfWork,
                                endpoint_id: str) -> EndpointView:
    admin = principal_of(request)
    endpoint = await _any(session, endpoint_id)
    return await _delete(session, _admin_actor(request, admin), endpoint)


@post("/{endpoint_id:str}/rotate-secret", status_code=200)
async def admin_rotate_secret(request: AnyRequest, session: UnitOfWork,
                              endpoint_id: str) -> RotatedSecret:
    admin = principal_of(request)
    endpoint = await _any(session, endpoint_id)
    return await _rotate(request, session, _admin_actor(request, admin), endpoint)


@post("/{endpoint_id:str}/test", status_code=202, errors=(409,))
async def admin_send_test(request: AnyRequest, session: UnitOfWork,
                          endpoint_id: str) -> TestSent:
    admin = principal_of(request)
    endpoint = await _any(session, endpoint_id)
    return await _test(session, _admin_actor(request, admin), endpoint)


@get("/{endpoint_id:str}/deliveries")
async def admin_list_deliveries(
    session: UnitOfWork, endpoint_id: str,
    limit: int | None = Parameter(default=None), cursor: str | None = Parameter(default=None),
    status: str | None = Parameter(default=None),
    event_type: str | None = Parameter(query="eventType", default=None),
) -> Page:
    endpoint = await _any(session, endpoint_id)
    return await _deliveries(session, endpoint, limit, cursor, status, event_type)


@post("/{endpoint_id:str}/replay", status_code=202, errors=(409,))
async def admin_replay(request: AnyRequest, session: UnitOfWork,
                       endpoint_id: str, data: ReplayBody) -> ReplayView:
    """Re-send an endpoint's failed messages created since ``since``, at a bounded rate."""
    admin = principal_of(request)
    endpoint = await _any(session, endpoint_id)
    return await _replay(request, session, _admin_actor(request, admin), endpoint, data)


@get("/messages/{message_id:str}")
async def admin_get_message(session: UnitOfWork,
                            message_id: str) -> DeliveryView:
    message = await service.get_message(session, message_id)
    attempts = await service.attempts_of(session, [message.id])
    return delivery_view(message, attempts[message.id])


@post("/messages/{message_id:str}/replay", status_code=202, errors=(409,))
async def admin_replay_message(request: AnyRequest, session: UnitOfWork,
                               message_id: str) -> DeliveryView:
    """Send one delivered or failed message again (same ``webhook-id``, same body)."""
    admin = principal_of(request)
    message = await service.get_message(session, message_id)
    before = {"status": message.status}
    await service.replay_message(session, message)
    await record(session, _admin_actor(request, admin), "webhook_message.replay",
                 "webhook_message", message.id, before=before, after={"status": message.status})
    attempts = await service.attempts_of(session, [message.id])
    return delivery_view(message, attempts[message.id])


admin_router = Router(
    path="/admin/v1/webhooks",
    route_handlers=[
        admin_create_endpoint, admin_list_endpoints, admin_get_endpoint, admin_update_endpoint,
        admin_delete_endpoint, admin_rotate_secret, admin_send_test, admin_list_deliveries,
        admin_replay, admin_get_message, admin_replay_message,
    ],
    before_request=ADMIN,
    tags=["admin webhooks"],
)
