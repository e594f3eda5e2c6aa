"""Payment requirements: what a 402 answer offers, in the x402 v2 header and the v1 body form.

The wire shapes are the SDK's own pydantic models (``PaymentRequired``, ``PaymentRequirements``
and their v1 twins) serialised with its header encoder, so whatever the SDK clients parse we
emit. Every offered network pays in its USDC; the price is in base units (micros) on all of them.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from eth_utils.address import is_address, to_checksum_address
from x402.http import encode_payment_required_header
from x402.mechanisms.evm.v1.constants import V1_NETWORK_CHAIN_IDS
from x402.schemas import (
    PaymentRequired,
    PaymentRequiredV1,
    PaymentRequirements,
    PaymentRequirementsV1,
    ResourceInfo,
)

from chain.networks import Network

__all__ = [
    "DEFAULT_ERROR",
    "SCHEME_EXACT",
    "PaymentChallenge",
    "PaymentOffer",
    "build_payment_challenge",
    "v1_network_name",
]

SCHEME_EXACT = "exact"
DEFAULT_ERROR = "Payment required"


def v1_network_name(network: Network) -> str:
    """The name an x402 v1 client knows this network by.

    v1 names chains (``base``, ``base-sepolia``) and clients map the name to a chain id from a
    fixed table. Our ``local`` dev chain runs with chain id 84532 and the canonical Base Sepolia
    USDC address, so v1 clients can only sign for it when it is advertised as ``base-sepolia``.
    A chain id no v1 client knows keeps the registry name (v1 clients cannot pay on it).
    """
    if V1_NETWORK_CHAIN_IDS.get(network.name) == network.chain_id:
        return network.name
    for name, chain_id in V1_NETWORK_CHAIN_IDS.items():
        if chain_id == network.chain_id:
            return name
    return network.name


@dataclass(frozen=True, slots=True)
class PaymentOffer:
    """One accepted way to pay: a network and its terms in both protocol versions."""

    network: Network
    requirements: PaymentRequirements  # x402 v2
    requirements_v1: PaymentRequirementsV1

    @property
    def amount(self) -> int:
        return int(self.requirements.amount)

    @property
    def asset(self) -> str:
        return self.requirements.asset

    @property
    def pay_to(self) -> str:
        return self.requirements.pay_to

    @property
    def v1_network(self) -> str:
        return self.requirements_v1.network


@dataclass(frozen=True, slots=True)
class PaymentChallenge:
    """Everything a 402 answer for one resource carries, and what payments are checked against.

    The SDK models inside are mutable pydantic objects: treat them as read-only, and use the
    ``payment_required*`` methods, which return fresh copies, to hand them to other code.
    """

    price_micros: int
    pay_to: str
    max_timeout_seconds: int
    resource: ResourceInfo
    error: str
    offers: tuple[PaymentOffer, ...]
    # x402 v2 extensions declared to clients, by key (``payment-identifier``, ``bazaar``,
    # ``sign-in-with-x``): each ``{"info": ..., "schema": ...}``; v1 has none.
    extensions: Mapping[str, Any] = field(default_factory=dict)
    # x402 v2 ``upto`` offers (``chain.x402.upto``), listed before the ``exact`` ones; v1 has
    # no upto.
    upto: tuple[PaymentRequirements, ...] = ()

    def payment_required(self) -> PaymentRequired:
        """The x402 v2 ``PaymentRequired`` object (the ``PAYMENT-REQUIRED`` header's content)."""
        return PaymentRequired(
            x402_version=2,
            error=self.error,
            resource=self.resource.model_copy(),
            accepts=[*(offer.model_copy(deep=True) for offer in self.upto),
                     *(offer.requirements.model_copy(deep=True) for offer in self.offers)],
            extensions=copy.deepcopy(dict(self.extensions)) or None,
        )

    def payment_required_v1(self) -> PaymentRequiredV1:
        """The x402 v1 ``PaymentRequired`` object (the JSON body v1 clients read)."""
        return PaymentRequiredV1(
            x402_version=1,
            error=self.error,
            accepts=[offer.requirements_v1.model_copy(deep=True) for offer in self.offers],
        )

    def header_value(self) -> str:
        """The ``PAYMENT-REQUIRED`` header value: base64 of the v2 JSON."""
        return encode_payment_required_header(self.payment_required())

    def v1_body(self) -> dict[str, Any]:
        """``{"x402Version": 1, "error", "accepts": [...]}`` with camelCase keys.

        The API merges it into its 402 error body (``code``/``requestId`` next to it): v1
        clients ignore the keys they do not know.
        """
        return self.payment_required_v1().model_dump(by_alias=True, exclude_none=True)

    def offer_for(self, network: str) -> PaymentOffer | None:
        """The offer on a network named as any client may name it: CAIP-2 (``eip155:84532``),
        registry name (``local``) or v1 name (``base-sepolia``)."""
        for offer in self.offers:
            if network in (offer.network.caip2, offer.network.name, offer.v1_network):
                return offer
        return None


def build_payment_challenge(
    *,
    price_micros: int,
    networks: Iterable[Network],
    pay_to: str,
    max_timeout_seconds: int,
    resource_url: str,
    description: str,
    mime_type: str = "application/json",
    error: str = DEFAULT_ERROR,
    extensions: Mapping[str, Any] | None = None,
    upto: Sequence[PaymentRequirements] = (),
) -> PaymentChallenge:
    """Build the ``exact`` USDC payment requirements for one resource on every given network.

    ``price_micros`` is USDC base units (6 decimals), the exact amount an authorization must
    carry. ``max_timeout_seconds`` tells clients how long to make their authorization valid;
    keep it well above verification's ``min_validity_seconds`` (10 s) plus settlement time.
    Raises ``ValueError`` on a non-positive price/timeout, a bad address or no network.
    """
    if isinstance(price_micros, bool) or not isinstance(price_micros, int) or price_micros <= 0:
        raise ValueError(f"price_micros must be a positive int, got {price_micros!r}")
    if max_timeout_seconds <= 0:
        raise ValueError("max_timeout_seconds must be positive")
    if not is_address(pay_to):
        raise ValueError(f"pay_to is not an address: {pay_to!r}")
    pay_to = to_checksum_address(pay_to)
    offers = tuple(
        _offer(
            network, price_micros, pay_to, max_timeout_seconds, resource_url, description, mime_type
        )
        for network in _unique(networks)
    )
    if not offers:
        raise ValueError("at least one network is needed to ask for a payment")
    return PaymentChallenge(
        price_micros=price_micros,
        pay_to=pay_to,
        max_timeout_seconds=max_timeout_seconds,
        resource=ResourceInfo(url=resource_url, description=description, mime_type=mime_type),
        error=error,
        offers=offers,
        extensions=dict(extensions or {}),
        upto=tuple(upto),
    )


def _unique(networks: Iterable[Network]) -> Sequence[Network]:
    seen: dict[str, Network] = {}
    for network in networks:
        seen.setdefault(network.name, network)
    return list(seen.values())


def _offer(
    network: Network,
    price_micros: int,
    pay_to: str,
    max_timeout_seconds: int,
    resource_url: str,
    description: str,
    mime_type: str,
) -> PaymentOffer:
    # The EIP-712 domain (name, version) goes in `extra`: clients need it to sign, and it
    # differs between deployments ("USD Coin" on Base, "USDC" on Base Sepolia).
    extra = {"name": network.eip712_name, "version": network.eip712_version}
    asset = to_checksum_address(network.usdc_address)
    v2 = PaymentRequirements(
        scheme=SCHEME_EXACT,
        network=network.caip2,
        asset=asset,
        amount=str(price_micros),
        pay_to=pay_to,
        max_timeout_seconds=max_timeout_seconds,
        extra=dict(extra),
    )
    v1 = PaymentRequirementsV1(
        scheme=SCHEME_EXACT,
        network=v1_network_name(network),
        max_amount_required=str(price_micros),
        resource=resource_url,
        description=description,
        mime_type=mime_type,
        pay_to=pay_to,
        max_timeout_seconds=max_timeout_seconds,
        asset=asset,
        extra=dict(extra),
    )
    return PaymentOffer(network=network, requirements=v2, requirements_v1=v1)
