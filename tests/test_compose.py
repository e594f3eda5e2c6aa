"""``compose.yaml`` cannot run here (no Docker), so it is checked against what it names: real
``passgate`` commands and options, real settings, real health routes, one scheduler, and a
dev chain that is ``passgate devchain``."""

from __future__ import annotations

import inspect
import re
import shlex
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from app.main import create_app
from app.settings import Settings
from chain.devchain_run import run_devchain
from workers.cli import main

COMPOSE = Path(__file__).resolve().parents[1] / "compose.yaml"
BACKING = {"postgres", "redis"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def passgate_commands(command: str) -> list[list[str]]:
    """The argument lists of every ``passgate`` call in a service's shell command."""
    tokens = shlex.split(command)
    script = tokens[2] if tokens[:2] == ["sh", "-c"] else command
    found = []
    for step in script.split("&&"):
        words = shlex.split(step)
        if "passgate" in words:
            found.append(words[words.index("passgate") + 1:])
    return found


def parse(args: list[str]) -> click.Context:
    """What ``passgate args`` would run, parsed by the real CLI (raises on a bad option)."""
    group = click.Context(main, info_name="passgate")
    command = main.get_command(group, args[0])
    assert command is not None, f"passgate has no command {args[0]!r}"
    return command.make_context(args[0], args[1:], parent=group)


def _services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = compose["services"]
    return services


def test_every_service_runs_a_real_passgate_command(compose):
    for name, service in _services(compose).items():
        if name in BACKING:
            continue
        calls = passgate_commands(service["command"])
        assert len(calls) == 1, (name, service["command"])
        parse(calls[0])  # raises on an unknown command or option


def test_every_passgate_environment_name_is_a_real_setting(compose):
    names = set()
    for service in [compose["x-passgate"], *_services(compose).values()]:
        names |= {key for key in service.get("environment", {}) if key.startswith("PASSGATE_")}
    fields = set(Settings.model_fields)

    unknown = sorted(n for n in names if n.removeprefix("PASSGATE_").lower() not in fields)

    assert names
    assert unknown == []


def test_the_api_serves_without_the_background_and_the_worker_and_scheduler_run_it(compose):
    services = _services(compose)
    commands = {name: parse(passgate_commands(services[name]["command"])[0])
                for name in ("api", "worker", "scheduler")}

    assert commands["api"].command.name == "serve"
    assert commands["api"].params["background"] is False
    assert commands["worker"].command.name == "worker"
    assert commands["scheduler"].command.name == "scheduler"
    assert "PASSGATE_REDIS_URL" in compose["x-passgate"]["environment"]


def test_the_scheduler_is_a_single_replica(compose):
    scheduler = _services(compose)["scheduler"]

    assert scheduler["deploy"]["replicas"] == 1
    assert "scale" not in scheduler
    assert not [name for name, service in _services(compose).items()
                if name != "scheduler" and "passgate scheduler" in service.get("command", "")]


def test_health_checks_use_the_real_health_routes(compose):
    routes = {route.path for route in create_app(Settings()).routes}
    api = _services(compose)["api"]

    checked = []
    for service in _services(compose).values():
        test = " ".join(service.get("healthcheck", {}).get("test", []))
        for url in re.findall(r"https?://[^\s'\"]+", test):
            path = "/" + url.split("/", 3)[3]
            assert path in routes, path
            checked.append(path)

    assert "/v1/health/live" in " ".join(api["healthcheck"]["test"])
    assert checked == ["/v1/health/live"]


def test_the_dev_chain_profile_is_passgate_devchain_on_the_settings_defaults(compose):
    devchain = _services(compose)["devchain"]
    [args] = passgate_commands(devchain["command"])
    ctx = parse(args)
    defaults = inspect.signature(run_devchain).parameters

    # The profile runs `passgate devchain`, reachable from the other containers
    assert devchain["profiles"] == ["devchain"]
    assert ctx.command.name == "devchain"
    assert ctx.params["host"] == "0.0.0.0"  # noqa: S104 - the container must be reachable
    assert f"{ctx.params['port']}:{ctx.params['port']}" in devchain["ports"]
    # Its chain id and token are what `local` expects by default: the RPC URL is all to set
    assert defaults["chain_id"].default == Settings().chain_local_chain_id
    assert defaults["token_address"].default == Settings().chain_local_usdc_address
    assert f"http://devchain:{ctx.params['port']}" in COMPOSE.read_text()
