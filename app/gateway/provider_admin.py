"""Admin-managed providers: create, change, delete, list beside the configured ones.

Configured providers are read-only here (they change with the deployment): creating one under
a configured name, or changing or deleting a configured one, is CONFLICT. Every value goes
through the same validation as the settings (``ProviderSettings``). Every change is audited
in its transaction; once it commits, this process forgets its cached providers (the others
within ``gateway_provider_cache_seconds``).
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

import msgspec
from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError

from app.audit.service import Actor, record
from app.config.providers import PROVIDER_NAME, ProviderSettings, check_outlives_call
from app.crypto import SecretBox, SecretUnreadableError
from app.db.models.gateway import GatewayProvider
from app.db.paging import DEFAULT_LIMIT, MAX_LIMIT, Page
from app.db.types import utcnow
from app.db.uow import UnitOfWork
from app.errors import Conflict, NotFound, ValidationFailed
from app.gateway import repository
from app.gateway.providers import header_context, open_headers
from app.gateway.schemas import (
    CONFIG,
    AdminProviderView,
    CreateProviderBody,
    UpdateProviderBody,
    admin_provider_view,
)
from app.gateway.service import Gateway
from app.ids import new_id
from app.settings import Settings

_FIELDS = (
    "base_url",
    "price_micros",
    "description",
    "model_prices",
    "route_prices",
    "timeout_seconds",
    "request_id_header",
    "usage_pricing",
)


def _plain(values: dict[str, Any]) -> dict[str, Any]:
    """Nested wire structs (``usagePricing``) as plain values, for the settings' validation."""
    return {name: msgspec.to_builtins(value) if isinstance(value, msgspec.Struct) else value
            for name, value in values.items()}


def _validated(settings: Settings, values: dict[str, Any]) -> ProviderSettings:
    values = _plain(values)
    try:
        config = ProviderSettings.model_validate(values)
    except ValidationError as exc:
        # Messages and locations only: the input may hold an upstream secret.
        details = [
            {"message": err["msg"], "key": ".".join(str(p) for p in err["loc"])}
            for err in exc.errors(include_input=False, include_url=False)
        ]
        raise ValidationFailed("The provider is not valid.", details=details) from None
    try:
        check_outlives_call(config, settings.gateway_connect_timeout_seconds,
                            settings.gateway_reservation_ttl_seconds)
    except ValueError as exc:
        raise ValidationFailed(
            "The provider is not valid.", details=[{"message": str(exc), "key": "timeoutSeconds"}]
        ) from None
    return config


def _row_values(row: GatewayProvider, headers: dict[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {name: getattr(row, name) for name in _FIELDS}
    return {**values, "name": row.name, "headers": headers}


def _seal(box: SecretBox, provider_id: str, headers: dict[str, str]) -> dict[str, str]:
    return {
        name: box.seal(value, context=header_context(provider_id, name))
        for name, value in headers.items()
    }


def snapshot(row: GatewayProvider) -> dict[str, Any]:
    """The audited view: header names, never their values."""
    return {
        "name": row.name,
        "baseUrl": row.base_url,
        "priceMicros": row.price_micros,
        "modelPrices": row.model_prices,
        "routePrices": row.route_prices,
        "usagePricing": row.usage_pricing,
        "timeoutSeconds": row.timeout_seconds,
        "headerNames": sorted(row.headers_sealed),
        "enabled": row.enabled,
    }


def _row_view(row: GatewayProvider, configured: set[str]) -> AdminProviderView:
    # Built without opening the sealed values: the admin view never needs them.
    config = ProviderSettings.model_validate(_row_values(row, {}))
    return admin_provider_view(config, row, shadowed=row.name in configured)


def _view(found: ProviderSettings | GatewayProvider) -> AdminProviderView:
    if isinstance(found, GatewayProvider):
        return _row_view(found, set())
    return admin_provider_view(found, None)


async def _find(
    session: UnitOfWork, settings: Settings, name: str
) -> ProviderSettings | GatewayProvider:
    """A configured provider's settings, else an admin-managed provider's row; NOT_FOUND."""
    for config in settings.providers:
        if config.name == name:
            return config
    row = await repository.provider_by_name(session, name)
    if row is None:
        raise NotFound("Provider not found.")
    return row


async def list_providers(
    session: UnitOfWork, settings: Settings, limit: int | None, cursor: str | None
) -> Page:
    """Configured and admin-managed providers (disabled and shadowed ones too), by name."""
    configured = {p.name for p in settings.providers}
    found = [admin_provider_view(p, None) for p in settings.providers]
    rows = await repository.all_providers(session)
    found.extend(_row_view(row, configured) for row in rows)
    found.sort(key=lambda v: (v.name, v.source != CONFIG))
    chunk, next_cursor = _page(found, limit, cursor)
    return Page(data=chunk, next_cursor=next_cursor)


async def get_provider(session: UnitOfWork, settings: Settings, name: str) -> AdminProviderView:
    """One provider by name, configured or admin-managed."""
    return _view(await _find(session, settings, name))


def _refuse_configured(settings: Settings, name: str) -> None:
    if any(p.name == name for p in settings.providers):
        raise Conflict(
            f"'{name}' is a configured provider; change it in the deployment's settings."
        )


async def create_provider(
    session: UnitOfWork, gateway: Gateway, actor: Actor, data: CreateProviderBody
) -> AdminProviderView:
    """Add a provider, audited. Header values are stored sealed and never returned."""
    values = {name: getattr(data, name) for name in data.__struct_fields__ if name != "enabled"}
    row = await _create(session, gateway.settings, gateway.box, values, enabled=data.enabled)
    await record(session, actor, "provider.create", "provider", row.id, after=snapshot(row))
    session.after_commit(gateway.registry.invalidate)
    return _view(await _find(session, gateway.settings, row.name))


async def update_provider(
    session: UnitOfWork, gateway: Gateway, actor: Actor, name: str, data: UpdateProviderBody
) -> AdminProviderView:
    """Change an admin-managed provider, audited; configured ones are CONFLICT."""
    found = await _find(session, gateway.settings, name)
    # Taken before the change: the row is the one the change updates in place.
    before = snapshot(found) if isinstance(found, GatewayProvider) else None
    row = await _update(session, gateway.settings, gateway.box, name, data.changes())
    await record(session, actor, "provider.update", "provider", row.id,
                 before=before, after=snapshot(row))
    session.after_commit(gateway.registry.invalidate)
    return _view(await _find(session, gateway.settings, row.name))


async def delete_provider(
    session: UnitOfWork, gateway: Gateway, actor: Actor, name: str
) -> AdminProviderView:
    """Remove an admin-managed provider, audited; configured ones are CONFLICT."""
    gone = _view(await _find(session, gateway.settings, name))
    row = await _delete(session, gateway.settings, name)
    await record(session, actor, "provider.delete", "provider", row.id, before=snapshot(row))
    session.after_commit(gateway.registry.invalidate)
    return gone


async def _create(
    session: UnitOfWork,
    settings: Settings,
    box: SecretBox,
    values: dict[str, Any],
    *,
    enabled: bool,
) -> GatewayProvider:
    config = _validated(settings, values)
    _refuse_configured(settings, config.name)
    now = utcnow()
    row = GatewayProvider(
        id=new_id("prv"),
        name=config.name,
        base_url=config.base_url,
        enabled=enabled,
        created_at=now,
        updated_at=now,
    )
    _apply(row, config, box, values.get("headers"))
    session.add(row)
    try:
        await session.flush()
    except IntegrityError:
        raise Conflict(f"A provider named '{config.name}' already exists.") from None
    return row


async def _update(
    session: UnitOfWork,
    settings: Settings,
    box: SecretBox,
    name: str,
    changes: dict[str, Any],
) -> GatewayProvider:
    _refuse_configured(settings, name)
    row = await repository.provider_by_name(session, name)
    if row is None:
        raise NotFound("Provider not found.")
    enabled = changes.pop("enabled", None)
    new_headers: dict[str, str] | None = changes.get("headers")
    if changes:
        try:
            current_headers = new_headers if new_headers is not None else open_headers(box, row)
        except SecretUnreadableError:
            raise Conflict(
                "The stored headers cannot be opened (was the pepper changed?); "
                "send new headers with this change."
            ) from None
        config = _validated(settings, {**_row_values(row, current_headers), **changes})
        _apply(row, config, box, new_headers)
    if isinstance(enabled, bool):
        row.enabled = enabled
    row.updated_at = utcnow()
    session.add(row)
    await session.flush()
    return row


def _apply(
    row: GatewayProvider,
    config: ProviderSettings,
    box: SecretBox,
    headers: dict[str, str] | None,
) -> None:
    for name in _FIELDS:
        value = getattr(config, name)
        if name == "usage_pricing" and value is not None:
            value = value.model_dump()  # a JSON column: stored by its settings names
        setattr(row, name, value)
    if headers is not None:
        row.headers_sealed = _seal(box, row.id, headers)


async def _delete(session: UnitOfWork, settings: Settings, name: str) -> GatewayProvider:
    _refuse_configured(settings, name)
    row = await repository.provider_by_name(session, name)
    if row is None:
        raise NotFound("Provider not found.")
    await session.delete(row)
    await session.flush()
    return row


def _page(
    items: list[AdminProviderView], limit: int | None, cursor: str | None
) -> tuple[list[AdminProviderView], str | None]:
    """Providers are few and merged from two sources, so they are paged in memory, by name."""
    size = limit if limit is not None else DEFAULT_LIMIT
    if not 1 <= size <= MAX_LIMIT:
        raise ValidationFailed(f"limit must be between 1 and {MAX_LIMIT}.")
    after = _decode_cursor(cursor) if cursor else None
    rest = [e for e in items if after is None or e.name > after]
    chunk = rest[:size]
    more = len(rest) > size
    return chunk, (_encode_cursor(chunk[-1].name) if more and chunk else None)


def _encode_cursor(name: str) -> str:
    return base64.urlsafe_b64encode(f"p1:{name}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> str:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ValidationFailed("cursor is not valid.") from None
    if not raw.startswith("p1:") or not re.match(PROVIDER_NAME, raw[3:]):
        raise ValidationFailed("cursor is not valid.")
    return raw[3:]
