"""What the access hooks need, and where they find it.

Access hooks run before Litestar resolves dependencies (a keyed request pays for one check, and
an unauthenticated caller learns nothing from body validation), so they cannot receive
injected arguments like handlers do. The app factory puts one :class:`Access` in the app's state
instead; the hooks read that object and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from litestar import Request

from app.auth.principal import Principal
from app.auth.service import Authenticator
from app.ratelimit.limiter import RateLimiter
from app.settings import Settings

STATE_KEY = "access"


class WalletSignIn(Protocol):
    """Sign-in-with-x (``app.siwx``, which sits above this area): the caller a
    ``SIGN-IN-WITH-X`` header proves, acting as what its wallet owns."""

    async def sign_in(self, header: str, scope: str | None) -> Principal | None:
        """The wallet's principal for a route needing ``scope``; None when the wallet owns
        nothing usable there. Raises ``Unauthorized`` for a proof that does not hold."""
        ...


@dataclass(frozen=True, slots=True)
class Access:
    settings: Settings
    authenticator: Authenticator
    limiter: RateLimiter
    wallet_sign_in: WalletSignIn | None = None


def access_of(request: Request[Any, Any, Any]) -> Access:
    # Item access: State's attribute access falls back through __getattr__ on every call.
    access: Access = request.app.state[STATE_KEY]
    return access
