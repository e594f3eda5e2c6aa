"""No claim code, claim token or key reaches the log of a running ``passgate serve``.

One real server process per database, its output (``passgate.access`` lines included) read back
from a file.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from app.credentials.format import KeyKind
from app.logs.redact import SECRET_PREFIXES, redact
from app.main import create_app
from app.settings import Settings
from tests.conftest import PEPPER
from tests.factories import well_formed_key
from workers.demo.server import free_port

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 60.0
LOG_TIMEOUT = 10.0


@dataclass
class Served:
    url: str
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for_access_lines(self, route: str, count: int) -> str:
        """The log once it shows ``count`` access lines for the route template ``route``
        (written after the response, so a moment after the client has it)."""
        deadline = time.monotonic() + LOG_TIMEOUT
        while True:
            text = self.log_text()
            if len(re.findall(rf"GET {re.escape(route)} \d{{3}} ", text)) >= count:
                return text
            assert time.monotonic() < deadline, f"no {count} access lines for {route}:\n{text}"
            time.sleep(0.05)


@pytest.fixture(scope="module")
def served(
    database_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    port = free_port()
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    env = os.environ | {
        "PASSGATE_ENVIRONMENT": "test",
        "PASSGATE_DATABASE_URL": database_url,
        "PASSGATE_REDIS_URL": redis_url,
        "PASSGATE_REDIS_PREFIX": f"pgtest:{uuid.uuid4().hex[:8]}",
        "PASSGATE_KEY_PEPPER": PEPPER,
        "PASSGATE_LOG_LEVEL": "INFO",
        "PASSGATE_PUBLIC_URL": f"http://127.0.0.1:{port}",
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "workers.cli", "serve", "--host", "127.0.0.1",
             "--port", str(port)],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + START_TIMEOUT
        while not _answers(url):
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "passgate serve did not start"
            time.sleep(0.1)
        yield Served(url=url, log=log)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/v1/health/live", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _register(served: Served) -> dict[str, str]:
    response = httpx.post(f"{served.url}/v1/agents/register", json={"name": "log-secrecy"},
                          timeout=15)
    assert response.status_code == 201, response.text
    body: dict[str, str] = response.json()
    return body


def test_a_claim_url_keeps_its_code_where_no_request_carries_it(served: Served) -> None:
    # Given a self-registered agent
    agent = _register(served)

    # When its claim URL is opened
    url = urlsplit(agent["claimUrl"])
    response = httpx.get(agent["claimUrl"], timeout=15)

    # Then the code is only in the fragment, which is never sent, and the page says how to claim
    assert url.fragment == agent["claimCode"]
    assert agent["claimCode"] not in url.path + url.query
    assert response.status_code == 200
    assert "claimCode" in response.json()["howToClaim"]
    text = served.wait_for_access_lines("/v1/claims", 1)
    assert agent["claimCode"] not in text


def test_a_claim_code_in_a_path_never_reaches_the_access_log(served: Served) -> None:
    # Given a claim code, and a mistyped copy of it (most of the code all the same)
    code = _register(served)["claimCode"]
    mistyped = code[:-1] + ("A" if code[-1] != "A" else "B")

    # When both are looked up by path
    found = httpx.get(f"{served.url}/v1/claims/{code}", timeout=15)
    missing = httpx.get(f"{served.url}/v1/claims/{mistyped}", timeout=15)

    # Then both requests are logged by their route, and neither shows the code
    assert found.status_code == 200
    assert missing.status_code == 404
    text = served.wait_for_access_lines("/v1/claims/{claim_code}", 2)
    assert code[4:-1] not in text


def test_secrets_in_query_strings_never_reach_the_access_log(served: Served) -> None:
    # Given secrets passed where they do not belong: named parameters and key-shaped values
    token = "clt_" + uuid.uuid4().hex
    key = well_formed_key("ak")
    upstream_secret = uuid.uuid4().hex

    # When they are sent in a query string
    response = httpx.get(
        f"{served.url}/v1/health/live",
        params={"claimToken": token, "q": key, "api_key": upstream_secret, "page": "2"},
        timeout=15,
    )

    # Then the request is logged by its route, and no secret shows
    assert response.status_code == 200
    text = served.wait_for_access_lines("/v1/health/live", 1)
    for secret in (token[4:], key[3:], upstream_secret):
        assert secret not in text


def test_every_issued_secret_prefix_is_masked() -> None:
    # Given every kind of key passgate issues, plus claim codes and tokens
    prefixes = {kind.value for kind in KeyKind} | {"clm", "clt"}

    # Then the log filter knows them all
    assert prefixes <= set(SECRET_PREFIXES)
    for prefix in prefixes:
        secret = f"{prefix}_{uuid.uuid4().hex}"
        assert secret not in redact(f"GET /x?q={secret} {secret}")


def test_every_route_with_a_secret_path_parameter_is_masked() -> None:
    # Given the app's routes, and the names a secret path parameter would have
    secret_names = re.compile(r"code|token|secret|password|signature")
    app = create_app(Settings(database_url="sqlite+aiosqlite://"))

    # Then each route with such a parameter has its value masked by the log filter
    checked = 0
    for route in app.routes:
        names = list(route.path_parameters)
        if any(secret_names.search(name) for name in names):
            checked += 1
            path = route.path_format.format(**dict.fromkeys(names, "hunter2hunter2"))
            assert "hunter2" not in redact(f'"GET {path} HTTP/1.1" 200'), route.path
    assert checked >= 1  # /v1/claims/{claim_code} at least
