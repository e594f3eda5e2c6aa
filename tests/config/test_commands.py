"""Every ``passgate`` command refuses bad settings the same way, and ``passgate config``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from app.config.problems import SettingsError
from app.main import create_app
from app.settings import Settings
from workers.cli import main

ROOT = Path(__file__).resolve().parents[2]
GOOD_PEPPER = "a-production-pepper-of-40-characters-xyz"
SIGNER_KEY = "0x" + "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"

COMMANDS = [
    ["serve"], ["worker"], ["scheduler"], ["migrate"], ["demo"], ["admin", "token"],
    ["admin", "create-platform", "Acme"], ["config"], ["config", "check"],
]
WORKING_COMMANDS = [["serve"], ["worker"], ["scheduler"], ["admin", "token"], ["config", "check"]]


def _run(*args: str):
    return CliRunner().invoke(main, list(args))


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_refuses_bad_settings_with_one_line_each_and_status_2(
    monkeypatch, command
):
    # Given two bad settings
    monkeypatch.setenv("PASSGATE_TRUSTED_PROXIES", '["bogus"]')
    monkeypatch.setenv("PASSGATE_PASSES", "[]")

    # When any command starts
    result = _run(*command)

    # Then it stops with one line per problem on stderr, and no traceback
    assert result.exit_code == 2, result.output
    lines = result.stderr.splitlines()
    assert [line.split(":", 1)[0] for line in lines] == [
        "PASSGATE_PASSES", "PASSGATE_TRUSTED_PROXIES"]
    assert result.stdout == ""
    assert isinstance(result.exception, SystemExit)


def test_a_real_process_with_a_bad_setting_prints_one_line_and_no_traceback(tmp_path):
    env = {key: value for key, value in os.environ.items() if not key.startswith("PASSGATE_")}
    env["PASSGATE_WEBHOOK_ALLOWED_CIDRS"] = '["bogus"]'

    done = subprocess.run([sys.executable, "-m", "workers.cli", "serve"], cwd=tmp_path, env=env
                          | {"PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
                          timeout=60)

    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "PASSGATE_WEBHOOK_ALLOWED_CIDRS: item 1: 'bogus' is not an IP address or network "
        "(CIDR); e.g. PASSGATE_WEBHOOK_ALLOWED_CIDRS=127.0.0.0/8,10.0.0.0/8"
    ]


@pytest.mark.parametrize("command", WORKING_COMMANDS, ids=" ".join)
def test_production_refuses_the_development_pepper(monkeypatch, command):
    monkeypatch.setenv("PASSGATE_ENVIRONMENT", "production")

    result = _run(*command)

    assert result.exit_code == 2, result.output
    (line,) = result.stderr.splitlines()
    assert line.startswith("PASSGATE_KEY_PEPPER: production refuses the public development "
                           "pepper")
    assert "e.g. PASSGATE_KEY_PEPPER=$(openssl rand -hex 32)" in line


def test_production_refuses_a_short_pepper(monkeypatch):
    monkeypatch.setenv("PASSGATE_ENVIRONMENT", "production")
    monkeypatch.setenv("PASSGATE_KEY_PEPPER", "short-pepper")

    result = _run("config", "check")

    assert result.exit_code == 2
    assert result.stderr.startswith("PASSGATE_KEY_PEPPER: production needs at least 32 "
                                    "characters, got 12")
    assert "short-pepper" not in result.output


@pytest.mark.parametrize("command", WORKING_COMMANDS, ids=" ".join)
def test_production_taking_payments_refuses_to_start_without_a_signer(monkeypatch, command):
    monkeypatch.setenv("PASSGATE_ENVIRONMENT", "production")
    monkeypatch.setenv("PASSGATE_KEY_PEPPER", GOOD_PEPPER)
    monkeypatch.setenv("PASSGATE_CHAIN_RPC_URLS", '{"base": "https://mainnet.base.org"}')
    monkeypatch.setenv("PASSGATE_CHAIN_PAY_TO_ADDRESS",
                       "0x209693Bc6afc0C5328bA36FaF03C514EF312287C")

    result = _run(*command)

    assert result.exit_code == 2, result.output
    (line,) = result.stderr.splitlines()
    assert line.startswith("PASSGATE_CHAIN_SIGNER_PRIVATE_KEY: production takes x402 payments")


def test_config_check_passes_a_complete_production_configuration(monkeypatch):
    monkeypatch.setenv("PASSGATE_ENVIRONMENT", "production")
    monkeypatch.setenv("PASSGATE_KEY_PEPPER", GOOD_PEPPER)
    monkeypatch.setenv("PASSGATE_CHAIN_RPC_URLS", '{"base": "https://mainnet.base.org"}')
    monkeypatch.setenv("PASSGATE_CHAIN_PAY_TO_ADDRESS",
                       "0x209693Bc6afc0C5328bA36FaF03C514EF312287C")
    monkeypatch.setenv("PASSGATE_CHAIN_SIGNER_PRIVATE_KEY", SIGNER_KEY)

    result = _run("config", "check")

    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("settings OK: environment production")


def test_config_check_takes_a_comma_separated_cidr_list(monkeypatch):
    # Before, this value crashed every command with a JSON decoding traceback.
    monkeypatch.setenv("PASSGATE_WEBHOOK_ALLOWED_CIDRS", "127.0.0.0/8")

    result = _run("config", "check")

    assert result.exit_code == 0, result.output


def test_config_check_names_a_misspelt_variable(monkeypatch):
    monkeypatch.setenv("PASSGATE_REDIS_PREFX", "staging")

    result = _run("config", "check")

    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "PASSGATE_REDIS_PREFX: is set but is not a passgate setting "
        "(did you mean PASSGATE_REDIS_PREFIX?)"
    ]


def test_config_check_names_a_misspelt_variable_in_the_env_file(tmp_path):
    # The autouse fixture runs each test in tmp_path, where settings look for .env.
    (tmp_path / ".env").write_text("PASSGATE_TRUSTED_PROXY=10.0.0.0/8\n", encoding="utf-8")

    result = _run("config", "check")

    assert result.exit_code == 2
    assert result.stderr.startswith("PASSGATE_TRUSTED_PROXY: is set but is not a passgate "
                                    "setting (did you mean PASSGATE_TRUSTED_PROXIES?)")


def test_an_unreadable_env_file_is_one_line_too(tmp_path):
    (tmp_path / ".env").write_bytes(b"\xff\xfePASSGATE_PORT=1")

    result = _run("migrate")

    assert result.exit_code == 2
    assert result.stderr.startswith(".env: cannot be read: 'utf-8' codec can't decode")


def test_config_prints_the_effective_settings_with_every_secret_masked(monkeypatch):
    # Given secrets in every form a setting can hold them
    secrets = {
        "PASSGATE_KEY_PEPPER": GOOD_PEPPER,
        "PASSGATE_ADMIN_TOKEN": "adm-token-0123456789abcdef",
        "PASSGATE_CHAIN_SIGNER_PRIVATE_KEY": SIGNER_KEY,
        "PASSGATE_DATABASE_URL": "postgresql+asyncpg://app:Db-Pa55word@db.internal/passgate",
        "PASSGATE_REDIS_URL": "redis://:Redis-Pa55word@redis.internal:6379/0",
        "PASSGATE_CHAIN_RPC_URLS":
            '{"base": "https://base-mainnet.g.alchemy.com/v2/AlchemyKey0123456789xyz,'
            'https://rpc.example/?apikey=QueryKey99&chain=base"}',
        "PASSGATE_PROVIDERS": '[{"name": "openai", "base_url": "https://api.openai.com", '
                              '"price_micros": 1000, '
                              '"headers": {"Authorization": "Bearer sk-Upstream1"}}]',
    }
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("PASSGATE_PORT", "9000")

    # When the operator prints the settings
    result = _run("config")

    # Then nothing secret shows, and what was set (or left at its default) can be read
    assert result.exit_code == 0, result.output
    for secret in (GOOD_PEPPER, "adm-token-0123456789abcdef", SIGNER_KEY[2:], "Db-Pa55word",
                   "Redis-Pa55word", "AlchemyKey0123456789xyz", "QueryKey99", "sk-Upstream1"):
        assert secret not in result.output
    lines = result.stdout.splitlines()
    assert "PASSGATE_PORT=9000" in lines
    assert "PASSGATE_HOST=127.0.0.1  # default" in lines
    assert "PASSGATE_KEY_PEPPER='********'" in lines
    assert ("PASSGATE_DATABASE_URL='postgresql+asyncpg://app:********@db.internal/passgate'"
            in lines)
    assert any(line.startswith("PASSGATE_CHAIN_RPC_URLS=") and "g.alchemy.com/v2/********"
               in line and "chain=base" in line for line in lines)
    assert len(lines) == len({line.split("=", 1)[0] for line in lines})


def test_the_app_factory_refuses_what_serve_refuses():
    # A server pointed straight at app.main:create_app gets the same production checks.
    with pytest.raises(SettingsError) as raised:
        create_app(Settings(environment="production"))

    assert raised.value.lines()[0].startswith("PASSGATE_KEY_PEPPER: production refuses")
