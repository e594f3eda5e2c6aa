"""The chain side of x402 for the API: offered networks, their clients, the challenge."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from x402.schemas import PaymentRequirements

from app.errors import ServiceUnavailable
from app.settings import Settings
from chain.client import ChainClient
from chain.networks import Network
from chain.x402 import PaymentChallenge, build_payment_challenge
from chain.x402.upto import UptoVerifier, upto_requirements


@dataclass
class PaymentChain:
    """Networks payments are accepted on, and one ``ChainClient`` per network per event loop.

    Clients hold an HTTP pool bound to the loop that made them; the API has one loop, but a
    test process may run several apps, each on its own.
    """

    settings: Settings
    networks: dict[str, Network] = field(init=False)
    _clients: dict[tuple[int, str], ChainClient] = field(default_factory=dict, init=False)
    _verifiers: dict[str, UptoVerifier] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self.networks = self.settings.networks()

    @property
    def configured(self) -> bool:
        """Payments are accepted: at least one network and a pay-to address."""
        return bool(self.networks) and bool(self.settings.chain_pay_to_address)

    @property
    def can_settle_signed(self) -> bool:
        """A settlement signer is configured: a signed (EIP-3009) payment can be submitted."""
        return self.settings.chain_signer_private_key is not None

    @property
    def pay_to(self) -> str:
        if not self.settings.chain_pay_to_address or not self.networks:
            raise ServiceUnavailable("Payments are not configured on this server.")
        return self.settings.chain_pay_to_address

    def clients(self) -> dict[str, ChainClient]:
        loop_id = id(asyncio.get_running_loop())
        found: dict[str, ChainClient] = {}
        for name, network in self.networks.items():
            client = self._clients.get((loop_id, name))
            if client is None:
                client = ChainClient.for_network(
                    network, timeout=self.settings.chain_rpc_timeout_seconds
                )
                self._clients[(loop_id, name)] = client
            found[name] = client
        return found

    def challenge(
        self, price_micros: int, resource_url: str, description: str,
        extensions: Mapping[str, Any] | None = None, upto_max_micros: int | None = None,
    ) -> PaymentChallenge:
        return build_payment_challenge(
            price_micros=price_micros,
            networks=self.networks.values(),
            pay_to=self.pay_to,
            max_timeout_seconds=self.settings.x402_max_timeout_seconds,
            resource_url=resource_url,
            description=description,
            extensions=extensions,
            upto=self.upto_offers(upto_max_micros),
        )

    # -- upto (usage-priced calls) ----------------------------------------------------------

    @property
    def facilitator(self) -> str | None:
        """The settlement signer's address: the facilitator an upto authorization names."""
        return self.settings.signer_address

    def upto_offers(self, max_micros: int | None) -> list[PaymentRequirements]:
        """The upto offers for at most ``max_micros`` (none without a settlement signer)."""
        facilitator = self.facilitator
        if max_micros is None or facilitator is None:
            return []
        return [upto_requirements(network, max_micros, self.pay_to,
                                  self.settings.x402_max_timeout_seconds, facilitator)
                for network in self.networks.values()]

    def upto_verifier(self, network: str) -> UptoVerifier:
        """The SDK's upto verification on ``network`` (one per network and process)."""
        found = self._verifiers.get(network)
        if found is None:
            key = self.settings.chain_signer_private_key
            assert key is not None  # upto is only offered with a settlement signer
            found = UptoVerifier(self.networks[network].rpc_urls[0], key.get_secret_value())
            self._verifiers[network] = found
        return found

    async def close(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.close()
