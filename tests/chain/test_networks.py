"""The networks registry."""

from __future__ import annotations

import pytest

from chain.networks import BASE_SEPOLIA_USDC, BASE_USDC, build_networks, find_network


def test_networks_with_rpc_urls_are_enabled_with_their_presets() -> None:
    networks = build_networks({"base": "https://a.example, https://b.example", "local": []})
    assert list(networks) == ["base"]
    base = networks["base"]
    assert (base.chain_id, base.caip2, base.usdc_address) == (8453, "eip155:8453", BASE_USDC)
    assert (base.eip712_name, base.eip712_version, base.confirmations) == ("USD Coin", "2", 3)
    assert base.rpc_urls == ("https://a.example", "https://b.example")


def test_base_sepolia_preset() -> None:
    sepolia = build_networks({"base-sepolia": ["https://sepolia.example"]})["base-sepolia"]
    assert (sepolia.caip2, sepolia.usdc_address) == ("eip155:84532", BASE_SEPOLIA_USDC)
    assert (sepolia.eip712_name, sepolia.eip712_version, sepolia.confirmations) == ("USDC", "2", 1)


def test_local_takes_chain_id_and_token_from_config() -> None:
    token = "0x" + "ab" * 20
    local = build_networks(
        {"local": ["http://127.0.0.1:8545"]},
        local_chain_id=31337,
        local_usdc_address=token,
        confirmations={"local": 2},
        max_log_range={"local": 500},
    )["local"]
    assert (local.chain_id, local.caip2) == (31337, "eip155:31337")
    assert local.usdc_address.lower() == token
    assert (local.confirmations, local.max_log_range) == (2, 500)


def test_local_defaults_to_the_base_sepolia_identity() -> None:
    local = build_networks({"local": "http://127.0.0.1:8545"})["local"]
    assert (local.chain_id, local.usdc_address, local.eip712_name) == (
        84532,
        BASE_SEPOLIA_USDC,
        "USDC",
    )


def test_confirmed_block_counts_the_block_of_the_log() -> None:
    base = build_networks({"base": "https://a.example"})["base"]
    assert base.confirmed_block(100) == 98  # blocks 98, 99, 100: three confirmations


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rpc_urls": {"polygon": "https://x.example"}}, "unknown network"),
        ({"rpc_urls": {"base": "ftp://x.example"}}, "http"),
        ({"rpc_urls": {"base": "https://x"}, "confirmations": {"base": 0}}, "confirmations"),
        (
            {"rpc_urls": {"base-sepolia": "https://x", "local": "http://127.0.0.1:8545"}},
            "share a chain id",
        ),
    ],
)
def test_bad_configuration_is_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_networks(**kwargs)  # type: ignore[arg-type]


def test_find_network_by_name_caip2_or_chain_id() -> None:
    networks = build_networks({"base": "https://a", "local": "http://127.0.0.1:8545"}).values()
    assert find_network(networks, "base") is not None
    assert find_network(networks, "eip155:84532") is not None
    assert find_network(networks, 8453) is not None
    assert find_network(networks, "8453") is not None
    assert find_network(networks, "eip155:1") is None
