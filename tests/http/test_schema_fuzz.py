"""schemathesis against passgate's own ``/schema``: whatever a client sends to any documented
operation, the answer is never a 5xx and is exactly what the document says (status, content
type, body), with real credentials for every security scheme.

The server is ``passgate serve`` in a process of its own, on the test session's database and
Redis, with payments on the session's anvil chain (so paid routes answer with real x402
requirements). Each operation gets a bounded number of examples (``EXAMPLES``).

Left out: the gateway's catch-all proxy (``/v1/gateway/{provider}/...``), which forwards to an
upstream: its answers are the upstream's, and tests/gateway drives it against a real one.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
import schemathesis
from eth_account import Account
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from app.db import migrate
from app.settings import Settings
from chain.devchain import DevChain
from tests.conftest import ADMIN_TOKEN, PEPPER
from tests.fixtures.live import ApiProcess, api_process
from tests.fixtures.services import postgres_database

EXAMPLES = 20
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]
UNLIMITED = "1000000000"


@pytest.fixture(scope="session")
def fuzz_database(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A database of its own on the session's backend: what the fuzzer creates (providers,
    platforms, agents by the hundred) must not show up in other tests' listings."""
    with contextlib.ExitStack() as stack:
        if database_url.startswith("sqlite"):
            url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('fuzzdb') / 'passgate.db'}"
        else:
            url = stack.enter_context(postgres_database())
        migrate.upgrade(Settings(database_url=url))
        yield url


@pytest.fixture(scope="session")
def fuzz_server(
    settings_factory, fuzz_database: str, devchain: DevChain,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ApiProcess]:
    settings = settings_factory(database_url=fuzz_database,
                                redis_prefix=f"fuzz:{uuid.uuid4().hex[:8]}")
    env = {
        "PASSGATE_ADMIN_TOKEN": ADMIN_TOKEN,
        "PASSGATE_KEY_PEPPER": PEPPER,
        "PASSGATE_WEBHOOK_ALLOWED_CIDRS": json.dumps(["127.0.0.0/8"]),
        "PASSGATE_CHAIN_RPC_URLS": json.dumps({"local": devchain.rpc_url}),
        "PASSGATE_CHAIN_LOCAL_CHAIN_ID": str(devchain.chain_id),
        "PASSGATE_CHAIN_LOCAL_USDC_ADDRESS": devchain.token_address,
        "PASSGATE_CHAIN_PAY_TO_ADDRESS": Account.create().address,
        "PASSGATE_CHAIN_DEPOSIT_ADDRESS": Account.create().address,
        # A paid request with a payment waits for settlement; no worker settles here.
        "PASSGATE_SETTLE_WAIT": "0",
        # No worker runs the chain watcher or the periodic jobs either, and health would say
        # so truthfully with a 503 (tests/health covers that): here it must stay 200.
        "PASSGATE_CHAIN_UNHEALTHY_AFTER_SECONDS": "86400",
        "PASSGATE_HEALTH_STALE_AFTER_SECONDS": "86400",
        "PASSGATE_CHAIN_SIGNER_PRIVATE_KEY": devchain.accounts[5].private_key,
        "PASSGATE_SIGNUP_PER_MINUTE": UNLIMITED,
        "PASSGATE_SIGNUP_PER_DAY": UNLIMITED,
        **{f"PASSGATE_PLAN_{plan}_PER_{period}": UNLIMITED
           for plan in ("FREE", "PRO", "ENTERPRISE", "PASS") for period in ("MINUTE", "DAY")},
    }
    log: Path = tmp_path_factory.mktemp("fuzz") / "api.log"
    with api_process(settings, log, env) as server:
        yield server


@pytest.fixture(scope="session")
def credentials(fuzz_server: ApiProcess) -> dict[str, str]:
    """A real agent key, platform master key and admin token: one per security scheme."""
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    with httpx.Client(base_url=fuzz_server.url, timeout=30) as http:
        agent = http.post("/v1/agents/register", json={"name": "fuzz"})
        platform = http.post("/admin/v1/platforms", json={"name": "fuzz"}, headers=admin)
    assert agent.status_code == 201, agent.text
    assert platform.status_code == 201, platform.text
    return {
        "X-API-Key": agent.json()["apiKey"],
        "X-Master-Key": platform.json()["masterKey"],
        **admin,
    }


@pytest.fixture(scope="session")
def passgate_schema(fuzz_server: ApiProcess, credentials: dict[str, str]):
    return schemathesis.openapi.from_url(f"{fuzz_server.url}/schema/openapi.json")


# The catch-all proxy, as its two paths appear in the document.
LEFT_OUT = r"^/v1/gateway/\{provider\}"


def _local(url: object) -> object:
    """A webhook URL's host made 127.0.0.1: creating an endpoint resolves its host, and a test
    sends nothing past this machine."""
    if not isinstance(url, str):
        return url
    try:
        parts = urlsplit(url)
        if not parts.hostname:
            return url
        netloc = "127.0.0.1" + (f":{parts.port}" if parts.port else "")
    except ValueError:
        return url
    return urlunsplit(parts._replace(netloc=netloc))


def test_every_operation_answers_as_documented_and_never_with_a_5xx(
    passgate_schema, credentials
):
    # given every documented operation, with valid and invalid input generated from its schema
    failures: dict[str, str] = {}
    for result in passgate_schema.exclude(path_regex=LEFT_OUT).get_all_operations():
        operation = result.ok()
        cases = st.one_of(operation.as_strategy(GenerationMode.POSITIVE),
                          operation.as_strategy(GenerationMode.NEGATIVE))

        @given(case=cases)
        @hypothesis_settings(max_examples=EXAMPLES, deadline=None, database=None,
                             suppress_health_check=list(HealthCheck))
        def call(case):
            if isinstance(case.body, dict) and "url" in case.body:
                case.body["url"] = _local(case.body["url"])
            case.headers = {**(case.headers or {}), **credentials}
            case.call_and_validate(checks=CHECKS, timeout=30)

        # when each is called
        try:
            call()
        except (Exception, FailureGroup) as exc:
            failures[operation.label] = str(exc)[:3000]

    # then no answer was a 5xx or anything the document does not describe
    if failures:
        report = "\n\n".join(f"== {label}\n{text}" for label, text in failures.items())
        pytest.fail(f"{len(failures)} operations answered off the document:\n\n{report}",
                    pytrace=False)
