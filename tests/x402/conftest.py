from __future__ import annotations

import pytest
from eth_account import Account

from chain.devchain import DevChain
from chain.networks import Network, build_networks
from chain.x402 import PaymentChallenge, build_payment_challenge

PRICE = 10_000_000  # 10 USDC, the 1d pass


def local_network(chain: DevChain, *, confirmations: int = 1) -> Network:
    return build_networks(
        {"local": chain.rpc_url},
        local_chain_id=chain.chain_id,
        local_usdc_address=chain.token_address,
        confirmations={"local": confirmations},
    )["local"]


@pytest.fixture
def network(devchain: DevChain) -> Network:
    return local_network(devchain)


@pytest.fixture
def pay_to() -> str:
    # A fresh receiving address per test: the session chain is shared.
    return str(Account.create().address)


@pytest.fixture
def challenge(network: Network, pay_to: str) -> PaymentChallenge:
    return build_payment_challenge(
        price_micros=PRICE,
        networks=[network],
        pay_to=pay_to,
        max_timeout_seconds=300,
        resource_url="http://127.0.0.1/v1/passes/1d",
        description="1-day key pass",
    )
