"""The networks passgate can be paid on, and how to build the configured set.

Kept free of app imports: the settings object calls ``build_networks`` with plain values.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from eth_utils.address import is_address, to_checksum_address

__all__ = [
    "BASE_SEPOLIA_CHAIN_ID",
    "BASE_SEPOLIA_USDC",
    "BASE_USDC",
    "NETWORK_NAMES",
    "Network",
    "build_networks",
    "find_network",
]

BASE_CHAIN_ID = 8453
BASE_USDC = "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913"
BASE_SEPOLIA_CHAIN_ID = 84532
BASE_SEPOLIA_USDC = "0x036CbD53842c5426634e7929541eC2318f3dCF7e"

NETWORK_NAMES = ("base", "base-sepolia", "local")


@dataclass(frozen=True, slots=True)
class Network:
    """One EVM network and its USDC deployment.

    ``confirmations`` counts the block holding a log: with 1, a log counts as soon as its block
    is the head; with 3, once two more blocks sit on top of it.
    """

    name: str
    chain_id: int
    usdc_address: str
    eip712_name: str
    eip712_version: str
    rpc_urls: tuple[str, ...]
    confirmations: int
    poll_interval_seconds: float
    max_log_range: int

    @property
    def caip2(self) -> str:
        """CAIP-2 id as used by x402 v2, e.g. ``eip155:8453``."""
        return f"eip155:{self.chain_id}"

    def confirmed_block(self, head: int) -> int:
        """Highest block whose logs have enough confirmations when the chain head is ``head``."""
        return head - self.confirmations + 1


@dataclass(frozen=True, slots=True)
class _Preset:
    chain_id: int
    usdc_address: str
    eip712_name: str
    eip712_version: str
    confirmations: int
    poll_interval_seconds: float
    max_log_range: int


# Base produces a block every 2 s; polling at that pace finds a log within one block time.
# 2,000 blocks is within the eth_getLogs range limit of the common hosted providers.
_PRESETS: dict[str, _Preset] = {
    "base": _Preset(BASE_CHAIN_ID, BASE_USDC, "USD Coin", "2", 3, 2.0, 2_000),
    "base-sepolia": _Preset(BASE_SEPOLIA_CHAIN_ID, BASE_SEPOLIA_USDC, "USDC", "2", 1, 2.0, 2_000),
    # anvil has no log range limit; a wide range makes local backfills fast.
    "local": _Preset(BASE_SEPOLIA_CHAIN_ID, BASE_SEPOLIA_USDC, "USDC", "2", 1, 1.0, 10_000),
}


def _urls(value: str | Sequence[str]) -> tuple[str, ...]:
    # Accept "a,b" from an environment variable as well as a list.
    items = value.split(",") if isinstance(value, str) else list(value)
    return tuple(url.strip() for url in items if url.strip())


def build_networks(
    rpc_urls: Mapping[str, str | Sequence[str]],
    *,
    local_chain_id: int = BASE_SEPOLIA_CHAIN_ID,
    local_usdc_address: str = BASE_SEPOLIA_USDC,
    confirmations: Mapping[str, int] | None = None,
    poll_interval_seconds: Mapping[str, float] | None = None,
    max_log_range: Mapping[str, int] | None = None,
) -> dict[str, Network]:
    """Build the enabled networks, keyed by name.

    A network is enabled when ``rpc_urls`` has at least one URL for it (a list, or one
    comma-separated string). The other mappings override the per-network defaults.
    Raises ``ValueError`` for unknown names, bad values, or two enabled networks sharing a
    chain id (``local`` defaults to 84532, so it cannot run next to ``base-sepolia`` unless
    ``local_chain_id`` differs): a CAIP-2 id must identify exactly one network.
    """
    confirmations = dict(confirmations or {})
    poll_interval_seconds = dict(poll_interval_seconds or {})
    max_log_range = dict(max_log_range or {})
    named: list[tuple[str, Mapping[str, object]]] = [
        ("rpc_urls", rpc_urls),
        ("confirmations", confirmations),
        ("poll_interval_seconds", poll_interval_seconds),
        ("max_log_range", max_log_range),
    ]
    for label, mapping in named:
        unknown = sorted(set(mapping) - set(NETWORK_NAMES))
        if unknown:
            raise ValueError(f"{label}: unknown network(s) {unknown}; known: {NETWORK_NAMES}")
    if not is_address(local_usdc_address):
        raise ValueError(f"local_usdc_address is not an address: {local_usdc_address!r}")

    networks: dict[str, Network] = {}
    for name in NETWORK_NAMES:
        urls = _urls(rpc_urls.get(name, ()))
        if not urls:
            continue
        preset = _PRESETS[name]
        is_local = name == "local"
        network = Network(
            name=name,
            chain_id=local_chain_id if is_local else preset.chain_id,
            usdc_address=to_checksum_address(
                local_usdc_address if is_local else preset.usdc_address
            ),
            eip712_name=preset.eip712_name,
            eip712_version=preset.eip712_version,
            rpc_urls=urls,
            confirmations=confirmations.get(name, preset.confirmations),
            poll_interval_seconds=poll_interval_seconds.get(name, preset.poll_interval_seconds),
            max_log_range=max_log_range.get(name, preset.max_log_range),
        )
        _validate(network)
        networks[name] = network

    chain_ids = [network.chain_id for network in networks.values()]
    if len(chain_ids) != len(set(chain_ids)):
        raise ValueError(f"two enabled networks share a chain id: {sorted(networks)}")
    return networks


def _validate(network: Network) -> None:
    if network.chain_id <= 0:
        raise ValueError(f"{network.name}: chain id must be positive")
    if network.confirmations < 1:
        raise ValueError(f"{network.name}: confirmations must be >= 1")
    if network.poll_interval_seconds <= 0:
        raise ValueError(f"{network.name}: poll interval must be > 0")
    if network.max_log_range < 1:
        raise ValueError(f"{network.name}: max log range must be >= 1")
    for url in network.rpc_urls:
        if not url.startswith(("http://", "https://")):
            # Only the URL scheme is echoed: RPC URLs often embed API keys.
            raise ValueError(f"{network.name}: RPC URLs must be http(s), got {url.split(':')[0]}:")


def find_network(networks: Iterable[Network], ref: str | int) -> Network | None:
    """Look a network up by name (``base``), CAIP-2 id (``eip155:8453``) or chain id."""
    for network in networks:
        if ref in (network.name, network.caip2, network.chain_id):
            return network
        if isinstance(ref, str) and ref.isdigit() and int(ref) == network.chain_id:
            return network
    return None
