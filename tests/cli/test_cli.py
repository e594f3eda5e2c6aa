"""The ``passgate`` command line, driven as a user would: real processes and a real server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from app.db import migrate
from app.settings import Settings, get_settings
from workers.cli import main
from workers.demo.server import embedded_service, free_port

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def sqlite_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    env = {
        "PASSGATE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}",
        "PASSGATE_KEY_PEPPER": "cli-pepper-" + uuid.uuid4().hex,
        "PASSGATE_REDIS_URL": "",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    yield env
    get_settings.cache_clear()


def test_migrate_then_create_platform_prints_master_key_once(sqlite_env):
    runner = CliRunner()

    migrated = runner.invoke(main, ["migrate"])
    created = runner.invoke(main, ["admin", "create-platform", "Acme"])

    assert migrated.exit_code == 0, migrated.output
    assert created.exit_code == 0, created.output
    assert "plt_" in created.output
    assert created.output.count("mk_") == 1


def test_migrate_creates_a_new_sqlite_file_with_16_kib_pages_and_keeps_an_old_files(
    sqlite_env, tmp_path
):
    import sqlite3

    # Given a database file someone created with SQLite's default 4 KiB pages
    old = tmp_path / "old.db"
    sqlite3.connect(old).execute("CREATE TABLE keep (x)").connection.close()
    runner = CliRunner()

    # When both are migrated
    fresh = runner.invoke(main, ["migrate"])
    sqlite_env_old = {"PASSGATE_DATABASE_URL": f"sqlite+aiosqlite:///{old}"}
    get_settings.cache_clear()
    again = runner.invoke(main, ["migrate"], env=sqlite_env_old)
    get_settings.cache_clear()

    # Then the new file has the larger pages, the existing one is migrated as it is
    assert fresh.exit_code == 0, fresh.output
    assert again.exit_code == 0, again.output
    new_path = sqlite_env["PASSGATE_DATABASE_URL"].split(":///", 1)[1]
    with sqlite3.connect(new_path) as conn:
        assert conn.execute("PRAGMA page_size").fetchone() == (16384,)
        assert conn.execute("SELECT count(*) FROM agents").fetchone() == (0,)
    with sqlite3.connect(old) as conn:
        assert conn.execute("PRAGMA page_size").fetchone() == (4096,)
        assert conn.execute("SELECT count(*) FROM agents").fetchone() == (0,)


def test_admin_token_from_cli_opens_the_admin_api(sqlite_env):
    runner = CliRunner()
    runner.invoke(main, ["migrate"])
    result = runner.invoke(main, ["admin", "token", "--label", "ops"])
    token = result.output.strip().split()[-1]
    settings = Settings(port=free_port())

    with embedded_service(settings) as base:
        response = httpx.get(f"{base}/admin/v1/platforms",
                             headers={"Authorization": f"Bearer {token}"})

    assert result.exit_code == 0, result.output
    assert token.startswith("adm_")
    assert response.status_code == 200, response.text


@pytest.fixture
def running_api(sqlite_env, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    # The API runs in this process, so its access lines would land in the output that
    # CliRunner captures for the command under test.
    monkeypatch.setenv("PASSGATE_ACCESS_LOG", "false")
    migrate.upgrade(Settings())
    with embedded_service(Settings(port=free_port())) as base:
        yield base


def _register(base: str) -> dict[str, str]:
    body: dict[str, str] = httpx.post(f"{base}/v1/agents/register", json={"name": "cli"}).json()
    return body


def test_keys_list_revoke_and_regenerate_through_the_cli(running_api, monkeypatch):
    agent = _register(running_api)
    extra = httpx.post(f"{running_api}/v1/api-keys", json={"label": "laptop"},
                       headers={"X-API-Key": agent["apiKey"]}).json()
    monkeypatch.setenv("PASSGATE_URL", running_api)
    monkeypatch.setenv("PASSGATE_API_KEY", agent["apiKey"])
    runner = CliRunner()

    listed = runner.invoke(main, ["keys", "list"])
    regenerated = runner.invoke(main, ["keys", "regenerate", extra["id"], "--grace", "0"])
    revoked = runner.invoke(main, ["keys", "revoke", extra["id"]])

    assert listed.exit_code == 0, listed.output
    assert extra["id"] in listed.output
    assert "laptop" in listed.output
    assert agent["apiKey"] not in listed.output
    assert regenerated.exit_code == 0, regenerated.output
    assert '"key": "pk_' in regenerated.output
    assert revoked.exit_code == 0, revoked.output
    assert "revoked" in revoked.output


def test_keys_cli_explains_a_refused_key(running_api, monkeypatch):
    agent = _register(running_api)
    httpx.delete(f"{running_api}/v1/api-keys/{agent['keyId']}",
                 headers={"X-API-Key": agent["apiKey"]})
    monkeypatch.setenv("PASSGATE_URL", running_api)
    monkeypatch.setenv("PASSGATE_API_KEY", agent["apiKey"])

    result = CliRunner().invoke(main, ["keys", "list"])

    assert result.exit_code != 0
    assert "401" in result.output
    assert "revoked" in result.output


def test_keys_cli_cannot_revoke_the_agent_key_with_a_narrow_key(running_api, monkeypatch):
    # Given a key that may only write keys
    agent = _register(running_api)
    narrow = httpx.post(f"{running_api}/v1/api-keys",
                        json={"label": "ci", "scopes": ["keys:write"]},
                        headers={"X-API-Key": agent["apiKey"]}).json()
    monkeypatch.setenv("PASSGATE_URL", running_api)
    monkeypatch.setenv("PASSGATE_API_KEY", narrow["key"])

    # When it revokes the agent key through the CLI
    result = CliRunner().invoke(main, ["keys", "revoke", agent["keyId"]])

    # Then the CLI says why in one line, and the agent key still works
    assert result.exit_code != 0
    assert "403 FORBIDDEN" in result.output
    assert len(result.output.strip().splitlines()) == 1
    info = httpx.get(f"{running_api}/v1/api-keys/info", headers={"X-API-Key": agent["apiKey"]})
    assert info.status_code == 200


def test_keys_cli_without_a_key_says_what_to_set(sqlite_env, monkeypatch):
    monkeypatch.delenv("PASSGATE_API_KEY", raising=False)

    result = CliRunner().invoke(main, ["keys", "list"])

    assert result.exit_code != 0
    assert "PASSGATE_API_KEY" in result.output


@pytest.mark.parametrize("command", ["worker", "scheduler"])
def test_long_running_processes_start_idle_and_stop_cleanly(command, sqlite_env, redis_url):
    env = {**os.environ, **sqlite_env, "PASSGATE_REDIS_URL": redis_url,
           "PASSGATE_REDIS_PREFIX": f"clitest:{uuid.uuid4().hex[:6]}"}
    migrate.upgrade(Settings(database_url=sqlite_env["PASSGATE_DATABASE_URL"]))
    proc = subprocess.Popen([sys.executable, "-m", "workers.cli", command], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        time.sleep(3)
        still_running = proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    output = proc.stdout.read().decode() if proc.stdout else ""

    assert still_running, output
    assert code == 0, output
    # One start-up line says what the process runs, naming the broker by host only
    first = output.splitlines()[0]
    assert first.startswith(f"passgate {command}: "), output
    assert "broker redis at" in first
    assert ("queues chain, " in first) if command == "worker" else ("sends jobs " in first)
