"""``passgate demo``: the product end to end on embedded defaults, one readable step at a time.

Each step is a small function over the HTTP API; later features add their steps to ``STEPS``.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import httpx

from app.config.problems import SettingsError
from app.db import migrate
from app.settings import Settings, load_settings
from workers.demo.chain_steps import (
    demo_chain,
    step_deposit,
    step_gateway_credits,
    step_gateway_x402,
    step_pass,
    step_webhook,
)
from workers.demo.discovery_steps import step_discovery
from workers.demo.identifier_steps import step_pass_identifier
from workers.demo.key_steps import (
    step_audit,
    step_extra_key,
    step_health,
    step_list_keys,
    step_rate_limit,
    step_register,
    step_revoke,
)
from workers.demo.output import (
    DEMO_DEPOSIT_ACCOUNT,
    DEMO_PAY_TO_ACCOUNT,
    DEMO_PER_MINUTE,
    DEMO_SIGNER_ACCOUNT,
    DemoFailed,
    DemoState,
    say,
)
from workers.demo.server import embedded_service, free_port
from workers.demo.siwx_steps import step_siwx
from workers.demo.upto_steps import step_usage_priced

STEPS: list[Callable[[DemoState], None]] = [
    step_health, step_register, step_extra_key, step_list_keys, step_rate_limit, step_revoke,
    step_audit, step_deposit, step_pass, step_pass_identifier, step_gateway_credits,
    step_gateway_x402, step_siwx, step_webhook, step_discovery, step_usage_priced,
]


def demo_settings(workdir: Path) -> Settings:
    port = free_port()
    values: dict[str, Any] = {
        "environment": "development",
        "database_url": f"sqlite+aiosqlite:///{workdir / 'passgate.db'}",
        "redis_url": "",
        "port": port,
        # The served origin: sign-in-with-x binds its messages to it.
        "public_url": f"http://127.0.0.1:{port}",
        "admin_token": "adm-demo-" + uuid.uuid4().hex,
        "plan_free_per_minute": DEMO_PER_MINUTE,
        "log_level": "WARNING",
        # The demo's webhook receiver runs on this machine: allow loopback targets here only.
        "webhook_allowed_cidrs": ["127.0.0.0/8"],
    }
    load_settings(**values)  # a bad PASSGATE_* variable stops the demo before a chain starts
    return load_settings(**values, **demo_chain_settings())


def demo_chain_settings() -> dict[str, Any]:
    """Watch the demo's dev chain: deposits to one of its dev accounts, 1 confirmation."""
    chain = demo_chain()
    return {
        "chain_rpc_urls": {"local": chain.rpc_url},
        "chain_local_chain_id": chain.chain_id,
        "chain_local_usdc_address": chain.token_address,
        "chain_deposit_address": chain.accounts[DEMO_DEPOSIT_ACCOUNT].address,
        "chain_pay_to_address": chain.accounts[DEMO_PAY_TO_ACCOUNT].address,
        # anvil's public test key: fine on a dev chain, never anywhere else.
        "chain_signer_private_key": chain.accounts[DEMO_SIGNER_ACCOUNT].private_key,
        "chain_max_backoff_seconds": 2.0,
    }


def run_demo(keep: bool = False) -> int:
    for noisy in ("httpx", "dramatiq", "apscheduler", "x402"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    workdir = Path(tempfile.mkdtemp(prefix="passgate-demo-"))
    try:
        settings = demo_settings(workdir)
    except SettingsError:  # the CLI prints its lines
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    click.secho("passgate demo — embedded mode: SQLite file, the API and its whole background "
                "in one process, no servers", bold=True)
    say(f"database {workdir / 'passgate.db'}")
    try:
        migrate.upgrade(settings)
        with embedded_service(settings, announce=True) as base_url:
            say(f"API at {base_url}")
            token = settings.admin_token.get_secret_value() if settings.admin_token else ""
            with httpx.Client(base_url=base_url, timeout=30) as http:
                state = DemoState(http=http, admin_token=token)
                for step in STEPS:
                    step(state)
    except DemoFailed as exc:
        click.secho(f"\ndemo failed: {exc}", fg="red", err=True)
        return 1
    finally:
        if keep:
            say(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    click.secho("\ndemo finished: every step behaved as expected", fg="green", bold=True)
    return 0


__all__ = ["STEPS", "DemoState", "run_demo"]
