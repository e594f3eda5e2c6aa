"""Settings are checked completely when they load: one line per bad variable, never a secret."""

from __future__ import annotations

import shlex

import pytest

from app.config.problems import SettingsError, example_of
from app.settings import Settings, load_settings

BAD_VALUES = [
    ("PASSGATE_TRUSTED_PROXIES", '["bogus"]', "'bogus' is not an IP address or network"),
    ("PASSGATE_WEBHOOK_ALLOWED_CIDRS", '["bogus"]', "'bogus' is not an IP address or network"),
    ("PASSGATE_WEBHOOK_ALLOWED_CIDRS", "10.0.0.0/33", "is not an IP address or network"),
    ("PASSGATE_CHAIN_RPC_URLS", '{"mainnet": "https://rpc.example"}', "unknown network"),
    ("PASSGATE_CHAIN_RPC_URLS", '{"base": ""}', "no RPC URL given"),
    ("PASSGATE_CHAIN_SIGNER_PRIVATE_KEY", "0xzz", "32 bytes of hex"),
    ("PASSGATE_CHAIN_SIGNER_PRIVATE_KEY", "0x" + "ff" * 32, "not a valid secp256k1 private key"),
    ("PASSGATE_CHAIN_SIGNER_PRIVATE_KEY", "0x" + "00" * 32, "not a valid secp256k1 private key"),
    ("PASSGATE_PLAN_FREE_PER_MINUTE", "-5", "greater than or equal to 1"),
    ("PASSGATE_PLAN_PASS_PER_DAY", "0", "greater than or equal to 1"),
    ("PASSGATE_PASSES", "[]", "at least 1 item"),
    ("PASSGATE_PASSES", '[{"period": "1d", "seconds": -1, "price_micros": 1}]',
     "item 1, seconds: input should be greater than or equal to 1"),
    ("PASSGATE_PASSES", '[{"period": "1d", "seconds": 60, "price_micros": 0}]',
     "item 1, price_micros"),
    ("PASSGATE_PASSES", '[{"period": "a/b", "seconds": 60, "price_micros": 1}]',
     "item 1, period"),
    ("PASSGATE_PASSES", '[{"period": "1d", "seconds": 60, "price_micros": 1},'
                        ' {"period": "1d", "seconds": 99, "price_micros": 1}]', "listed twice"),
    ("PASSGATE_PASSES", '[{"period": "1d"', "not valid JSON"),
    ("PASSGATE_PASS_SCOPES", "api:read,admin:all", "unknown scope 'admin:all'"),
    ("PASSGATE_PORT", "70000", "less than or equal to 65535"),
    ("PASSGATE_PUBLIC_URL", "passgate.example.com", "absolute http(s) URL"),
    ("PASSGATE_DATABASE_URL", "mysql://db/passgate", "the driver must be one of"),
    ("PASSGATE_REDIS_URL", "localhost:6379", "redis://"),
    ("PASSGATE_REDIS_PREFIX", "two words", "string should match pattern"),
    ("PASSGATE_LOG_LEVEL", "loud", "'DEBUG', 'INFO'"),
    ("PASSGATE_CHAIN_CONFIRMATIONS", '{"base": 0}', "'base': input should be greater"),
    ("PASSGATE_CHAIN_CONFIRMATIONS", "base=3", "not valid JSON"),
    ("PASSGATE_CHAIN_PAY_TO_ADDRESS", "0x1234", "is not an Ethereum address"),
    ("PASSGATE_KEY_PEPPER", " ", "must not be empty"),
    ("PASSGATE_ADMIN_TOKEN", "short", "at least 16 characters"),
    ("PASSGATE_PROVIDERS_FILE", "/nonexistent/providers.toml", "cannot read"),
    ("PASSGATE_ENVIRONMENT", "prod", "'development', 'test' or 'production'"),
]


def _problem_lines(monkeypatch: pytest.MonkeyPatch, **env: str) -> list[str]:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as raised:
        load_settings()
    return raised.value.lines()


@pytest.mark.parametrize(("name", "value", "problem"), BAD_VALUES)
def test_a_bad_value_is_one_line_naming_the_variable_its_problem_and_a_good_example(
    monkeypatch, name, value, problem
):
    # Given one setting with a value that parses but makes no sense (or does not parse)
    # When the settings load
    lines = _problem_lines(monkeypatch, **{name: value})

    # Then there is exactly one line: the variable, what is wrong, and a value that works
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"{name}: ")
    assert problem in lines[0]
    assert f"; e.g. {name}=" in lines[0]


def test_every_bad_setting_is_reported_at_once_in_the_order_of_the_settings(monkeypatch):
    lines = _problem_lines(
        monkeypatch,
        PASSGATE_CHAIN_SIGNER_PRIVATE_KEY="0xzz",
        PASSGATE_TRUSTED_PROXIES='["bogus"]',
        PASSGATE_PLAN_FREE_PER_MINUTE="-5",
    )

    assert [line.split(":", 1)[0] for line in lines] == [
        "PASSGATE_PLAN_FREE_PER_MINUTE",
        "PASSGATE_TRUSTED_PROXIES",
        "PASSGATE_CHAIN_SIGNER_PRIVATE_KEY",
    ]


def test_a_problem_line_never_repeats_a_secret(monkeypatch):
    # Given bad values that carry secrets: a database password, an RPC API key, a key
    lines = _problem_lines(
        monkeypatch,
        PASSGATE_DATABASE_URL="mysql://app:hunter2hunter2@db/passgate",
        PASSGATE_CHAIN_RPC_URLS='{"base": "https://ok.example,wss://rpc.example/v2/KEYabc123KEYabc123"}',
        PASSGATE_CHAIN_SIGNER_PRIVATE_KEY="0x" + "5eed" * 15,
        PASSGATE_ADMIN_TOKEN="adm-tiny-1",
    )

    text = "\n".join(lines)
    assert len(lines) == 4, text
    for secret in ("hunter2hunter2", "KEYabc123KEYabc123", "5eed5eed", "adm-tiny-1"):
        assert secret not in text


def test_lists_take_comma_separated_values(monkeypatch):
    monkeypatch.setenv("PASSGATE_WEBHOOK_ALLOWED_CIDRS", "127.0.0.0/8")
    monkeypatch.setenv("PASSGATE_TRUSTED_PROXIES", "10.0.0.0/8, 192.168.1.1")
    monkeypatch.setenv("PASSGATE_PASS_SCOPES", "gateway:call,api:read")
    monkeypatch.setenv("PASSGATE_WEBHOOK_RETRY_DELAYS", "1,2.5")

    settings = load_settings()

    assert settings.webhook_allowed_cidrs == ["127.0.0.0/8"]
    assert settings.trusted_proxies == ["10.0.0.0/8", "192.168.1.1/32"]
    assert settings.pass_scopes == ["gateway:call", "api:read"]
    assert settings.webhook_retry_delays == [1.0, 2.5]


def test_lists_still_take_json(monkeypatch):
    monkeypatch.setenv("PASSGATE_WEBHOOK_ALLOWED_CIDRS", '["127.0.0.0/8", "::1/128"]')

    assert load_settings().webhook_allowed_cidrs == ["127.0.0.0/8", "::1/128"]


def test_an_empty_value_unsets_an_optional_setting(monkeypatch):
    monkeypatch.setenv("PASSGATE_PLAN_PASS_PER_DAY", "")
    monkeypatch.setenv("PASSGATE_ADMIN_TOKEN", "")
    monkeypatch.setenv("PASSGATE_CHAIN_PAY_TO_ADDRESS", "")

    settings = load_settings()

    assert settings.plan_pass_per_day is None
    assert settings.admin_token is None
    assert settings.chain_pay_to_address is None


def test_the_same_address_for_payments_and_deposits_is_refused(monkeypatch):
    address = "0x209693Bc6afc0C5328bA36FaF03C514EF312287C"

    lines = _problem_lines(monkeypatch, PASSGATE_CHAIN_PAY_TO_ADDRESS=address,
                           PASSGATE_CHAIN_DEPOSIT_ADDRESS=address.lower())

    assert len(lines) == 1
    assert lines[0].startswith("PASSGATE_CHAIN_DEPOSIT_ADDRESS: must differ")


def test_local_next_to_base_sepolia_needs_a_chain_id_of_its_own(monkeypatch):
    urls = '{"local": "http://127.0.0.1:8545", "base-sepolia": "https://sepolia.base.org"}'

    lines = _problem_lines(monkeypatch, PASSGATE_CHAIN_RPC_URLS=urls)
    monkeypatch.setenv("PASSGATE_CHAIN_LOCAL_CHAIN_ID", "31337")
    settings = load_settings()

    assert len(lines) == 1
    assert lines[0].startswith("PASSGATE_CHAIN_LOCAL_CHAIN_ID: two enabled networks")
    assert sorted(settings.networks()) == ["base-sepolia", "local"]


def test_a_provider_timeout_past_the_reservation_ttl_names_the_ttl(monkeypatch):
    providers = ('[{"name": "slow", "base_url": "https://slow.example", "price_micros": 1, '
                 '"timeout_seconds": 120}]')

    lines = _problem_lines(monkeypatch, PASSGATE_PROVIDERS=providers,
                           PASSGATE_GATEWAY_RESERVATION_TTL_SECONDS="60")

    assert len(lines) == 1
    assert lines[0].startswith("PASSGATE_GATEWAY_RESERVATION_TTL_SECONDS: gateway provider")


@pytest.mark.parametrize("name", list(Settings.model_fields))
def test_every_setting_shows_an_example_that_loads(monkeypatch, name):
    # Given the example a problem line would show for this setting
    example = example_of(Settings.model_fields[name])
    assert example, f"{name} has no example: give it Field(examples=[...])"
    if "$(" in example or "<" in example or name == "providers_file":
        return  # a placeholder the operator fills in (a secret is never an example), a file

    # When it is set as the shell would pass it, Then the settings load
    (value,) = shlex.split(example) or [""]
    monkeypatch.setenv(f"PASSGATE_{name.upper()}", value)
    load_settings()


def test_a_signer_key_is_taken_with_or_without_0x(monkeypatch):
    key = "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"
    monkeypatch.setenv("PASSGATE_CHAIN_SIGNER_PRIVATE_KEY", key.upper())
    bare = load_settings()
    monkeypatch.setenv("PASSGATE_CHAIN_SIGNER_PRIVATE_KEY", "0x" + key)
    prefixed = load_settings()

    assert bare.chain_signer_private_key is not None
    assert bare.chain_signer_private_key.get_secret_value() == "0x" + key
    assert bare.signer_address == prefixed.signer_address
