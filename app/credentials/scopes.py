"""Scopes a key may carry, and the defaults per kind of key."""

from __future__ import annotations

from app.credentials.format import KeyKind

AGENT_READ = "agent:read"
KEYS_READ = "keys:read"
KEYS_WRITE = "keys:write"
BALANCE_READ = "balance:read"
USAGE_READ = "usage:read"
WALLETS_READ = "wallets:read"
WALLETS_WRITE = "wallets:write"
PAYMENTS_READ = "payments:read"
GATEWAY = "gateway:call"
API_READ = "api:read"

ALL = frozenset(
    {
        AGENT_READ, KEYS_READ, KEYS_WRITE, BALANCE_READ, USAGE_READ, WALLETS_READ,
        WALLETS_WRITE, PAYMENTS_READ, GATEWAY, API_READ,
    }
)

DEFAULTS: dict[KeyKind, tuple[str, ...]] = {
    KeyKind.AGENT: tuple(sorted(ALL)),
    KeyKind.GATEWAY: (BALANCE_READ, GATEWAY, USAGE_READ),
    KeyKind.PERSONAL: (AGENT_READ, BALANCE_READ, GATEWAY, KEYS_READ, USAGE_READ),
    KeyKind.PASS: (API_READ, GATEWAY),
}

TYPE_NAMES: dict[KeyKind, str] = {
    KeyKind.AGENT: "agent",
    KeyKind.GATEWAY: "gateway",
    KeyKind.PERSONAL: "personal",
    KeyKind.PASS: "x402",
    KeyKind.MASTER: "master",
    KeyKind.ADMIN: "admin",
}
