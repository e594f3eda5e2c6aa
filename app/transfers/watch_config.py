"""What a network's watcher is configured with, read from the settings."""

from __future__ import annotations

from dataclasses import dataclass

from app.settings import Settings
from chain.networks import Network


@dataclass(frozen=True, slots=True)
class WatchConfig:
    network: Network
    addresses: tuple[str, ...]
    # First block to scan when there is no cursor; None = the head at that moment.
    start_block: int | None
    reorg_window: int
    budget_seconds: float
    target_logs: int
    max_backoff_seconds: float

    @classmethod
    def from_settings(cls, settings: Settings, network: Network) -> WatchConfig:
        return cls(
            network=network,
            addresses=tuple(settings.watched_addresses()),
            start_block=start_block(settings, network),
            reorg_window=settings.chain_reorg_window_blocks,
            budget_seconds=settings.chain_scan_budget_seconds,
            target_logs=settings.chain_target_logs_per_range,
            max_backoff_seconds=settings.chain_max_backoff_seconds,
        )


def start_block(settings: Settings, network: Network) -> int | None:
    """The first block a watcher with no cursor scans; None: the head it first sees."""
    start = settings.chain_start_blocks.get(network.name)
    if start is None and network.name == "local":
        start = 0  # a dev chain is young: scan it all
    return start
