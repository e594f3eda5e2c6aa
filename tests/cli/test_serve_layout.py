"""Which ``passgate serve`` layouts run the background, which are refused, and what each says."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import httpx

from tests.fixtures.onebox import operator_env, passgate, serving

PEPPER = "layout-pepper-" + uuid.uuid4().hex


def _sqlite(tmp_path: Path, **settings: str) -> dict[str, str]:
    env = operator_env(f"sqlite+aiosqlite:///{tmp_path / 'layout.db'}", key_pepper=PEPPER,
                       **settings)
    migrated = passgate("migrate", env=env)
    assert migrated.returncode == 0, migrated.stderr
    return env


def test_serve_refuses_several_processes_without_redis_in_one_line(tmp_path):
    # Given embedded defaults (no PASSGATE_REDIS_URL)
    env = _sqlite(tmp_path)

    # When the operator asks for two server processes
    result = passgate("serve", "--workers", "2", "--port", "1", env=env, timeout=60)

    # Then nothing starts (no process could run the background twice), and one line says why
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: --workers 2 needs PASSGATE_REDIS_URL")
    assert "passgate serve:" not in result.stderr


def test_serve_refuses_the_background_in_several_processes_with_redis(tmp_path, redis_url):
    # Given a Redis deployment
    env = _sqlite(tmp_path, redis_url=redis_url)

    # When the operator asks for the background in each of three API processes
    result = passgate("serve", "--workers", "3", "--background", "--port", "1", env=env,
                      timeout=60)

    # Then it is refused: the periodic jobs would be sent three times
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.strip().startswith("Error: --background with --workers 3")


def test_the_scheduler_without_redis_is_refused_in_one_line(tmp_path):
    env = _sqlite(tmp_path)

    result = passgate("scheduler", env=env, timeout=60)

    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "Error: the scheduler sends jobs through Redis: set PASSGATE_REDIS_URL. Without Redis, "
        "`passgate serve` (or `passgate worker`) sends the periodic jobs itself."
    ]


def test_serve_with_redis_is_api_only_and_says_who_runs_the_background(tmp_path, redis_url):
    # Given a Redis deployment
    env = _sqlite(tmp_path, redis_url=redis_url, redis_prefix=f"layout:{uuid.uuid4().hex[:6]}")

    # When `passgate serve` starts
    with serving(env, tmp_path / "serve.log") as served:
        first = served.output().splitlines()[0]

    # Then its start-up line says it runs the API only, and names the broker by host
    assert first.startswith("passgate serve: API on 127.0.0.1:"), first
    assert "no background (`passgate worker` and one `passgate scheduler` run it)" in first
    assert "broker redis at" in first
    assert "database sqlite " in first


def test_serve_without_its_background_and_without_redis_is_reported_degraded(tmp_path):
    # Given embedded defaults, a short health threshold, and the background turned off
    env = _sqlite(tmp_path, health_stale_after_seconds="2")

    with serving(env, tmp_path / "serve.log", "--no-background") as served:
        # When nothing has run any periodic job for longer than the threshold
        deadline = time.monotonic() + 30
        while True:
            response = httpx.get(f"{served.base}/v1/health", timeout=10)
            if response.status_code == 503 or time.monotonic() > deadline:
                break
            time.sleep(0.5)  # the API's grace period (the threshold) has to pass first
        first = served.output().splitlines()[0]

    # Then health is degraded and says why; the start-up line had warned about it
    assert response.status_code == 503, response.text
    body = response.json()
    assert body["status"] == "degraded"
    assert any(reason.startswith("no periodic job has run") for reason in body["reasons"])
    assert {job["status"] for job in body["jobs"]} == {"late"}
    assert "NO background" in first


def test_serve_refuses_a_malformed_signer_key_naming_the_setting_not_the_key(tmp_path):
    # Given chain settings with a signer key that is not one
    bad_key = "0x" + "zz" * 32
    env = operator_env(f"sqlite+aiosqlite:///{tmp_path / 'layout.db'}", key_pepper=PEPPER,
                       chain_rpc_urls='{"local": "http://127.0.0.1:9"}',
                       chain_signer_private_key=bad_key)

    # When the operator starts the server
    result = passgate("serve", "--port", "1", env=env, timeout=60)

    # Then one line names the setting (settings are checked as they load), and the value is
    # not echoed
    assert result.returncode == 2, result.stdout + result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("PASSGATE_CHAIN_SIGNER_PRIVATE_KEY: ")
    assert "zz" not in result.stdout + result.stderr
