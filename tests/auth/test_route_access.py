"""Every route states who may call it; the app refuses to start when one does not."""

from __future__ import annotations

from typing import Any

import pytest
from litestar import Litestar, Request, Router, get
from litestar.exceptions import ImproperlyConfiguredException

from app.auth.guards import ADMIN, OPEN, check_route_access, key_holder
from app.main import create_app


async def _plain_hook(request: Request[Any, Any, Any]) -> None:
    return None


@get("/thing", sync_to_thread=False)
def thing() -> dict[str, str]:
    return {}


@get("/other", before_request=key_holder(), sync_to_thread=False)
def other() -> dict[str, str]:
    return {}


def test_the_api_states_access_on_every_route(settings) -> None:
    # when / then (create_app runs the check)
    app = create_app(settings)
    assert app.routes


def test_a_route_with_a_hook_of_its_own_is_refused() -> None:
    # given a handler whose before_request replaces the app's access hook
    @get("/sneaky", before_request=_plain_hook, sync_to_thread=False)
    def sneaky() -> dict[str, str]:
        return {}

    app = Litestar([sneaky], before_request=OPEN)

    # when / then
    with pytest.raises(ImproperlyConfiguredException, match="/sneaky"):
        check_route_access(app)


def test_an_app_without_a_default_hook_is_refused() -> None:
    with pytest.raises(ImproperlyConfiguredException, match="no access hook"):
        check_route_access(Litestar([thing]))


def test_an_admin_route_that_overrides_the_admin_hook_is_refused() -> None:
    # given an admin router in which one handler states a weaker access
    admin = Router(path="/admin/v1", route_handlers=[thing, other], before_request=ADMIN)
    app = Litestar([admin], before_request=OPEN)

    # when / then
    with pytest.raises(ImproperlyConfiguredException, match="/admin/v1/other"):
        check_route_access(app)


def test_an_admin_router_with_the_admin_hook_is_accepted() -> None:
    admin = Router(path="/admin/v1", route_handlers=[thing], before_request=ADMIN)
    check_route_access(Litestar([admin], before_request=OPEN))
