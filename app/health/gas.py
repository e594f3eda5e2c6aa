"""The settlement signer's gas money per network, for ``/v1/health``.

One ``eth_getBalance`` and a fee estimate per network, bounded by ``TIMEOUT_SECONDS`` and
cached for ``CACHE_SECONDS`` per process, so health stays fast and a busy probe does not load
the node. Concurrent health requests share one reading (single flight per network).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from chain.client import ChainClient
from chain.errors import ChainError
from chain.networks import Network

TIMEOUT_SECONDS = 2.0
CACHE_SECONDS = 10.0
# Gas of one transferWithAuthorization with the signer's headroom (about 80,000 measured).
SETTLEMENT_GAS = 100_000


@dataclass(frozen=True, slots=True)
class GasReading:
    balance_wei: int | None
    minimum_wei: int | None
    error: str | None
    read_at: float

    @property
    def funded(self) -> bool | None:
        if self.balance_wei is None or self.minimum_wei is None:
            return None
        return self.balance_wei >= self.minimum_wei


class GasProbe:
    def __init__(self) -> None:
        self._clients: dict[str, ChainClient] = {}
        self._readings: dict[tuple[str, str], GasReading] = {}
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}

    async def read(self, network: Network, address: str) -> GasReading:
        key = (network.name, address)
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            cached = self._readings.get(key)
            if cached is not None and time.monotonic() - cached.read_at < CACHE_SECONDS:
                return cached
            reading = await self._measure(network, address)
            self._readings[key] = reading
            return reading

    async def _measure(self, network: Network, address: str) -> GasReading:
        client = self._clients.get(network.name)
        if client is None:
            client = ChainClient.for_network(network, timeout=TIMEOUT_SECONDS)
            self._clients[network.name] = client
        try:
            async with asyncio.timeout(TIMEOUT_SECONDS):
                balance, fees = await asyncio.gather(
                    client.get_eth_balance(address), client.estimate_fees()
                )
        except (ChainError, TimeoutError) as exc:
            return GasReading(None, None, type(exc).__name__, time.monotonic())
        return GasReading(balance, SETTLEMENT_GAS * fees.max_fee, None, time.monotonic())

    async def close(self) -> None:
        clients, self._clients = self._clients, {}
        for client in clients.values():
            await client.close()
