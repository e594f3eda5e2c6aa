"""Settings that are each fine but wrong together (``Settings._consistent`` reports them all)."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from app.config.providers import ProviderSettings, check_outlives_call, load_providers_file
from chain.networks import Network


class Settings(Protocol):
    """What the checks read of ``app.settings.Settings`` (which calls them while it loads)."""

    providers: list[ProviderSettings]
    providers_file: Path | None
    gateway_connect_timeout_seconds: float
    gateway_reservation_ttl_seconds: float
    chain_pay_to_address: str | None
    chain_deposit_address: str | None

    def networks(self) -> dict[str, Network]: ...


def provider_conflicts(settings: Settings) -> list[tuple[str, str]]:
    """Gateway providers that share a name, or whose timeout outlasts a reservation; merges
    the providers file into ``settings.providers`` (the environment wins by name)."""
    names = [p.name for p in settings.providers]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        return [("providers", f"two providers are named {repeated[0]!r}")]
    if settings.providers_file is not None:
        try:
            configured = {p.name: p for p in load_providers_file(settings.providers_file)}
        except ValueError as exc:
            return [("providers_file", str(exc))]
        configured.update({p.name: p for p in settings.providers})
        settings.providers = list(configured.values())
    conflicts = []
    for provider in settings.providers:
        try:
            check_outlives_call(provider, settings.gateway_connect_timeout_seconds,
                                settings.gateway_reservation_ttl_seconds)
        except ValueError as exc:
            conflicts.append(("gateway_reservation_ttl_seconds", str(exc)))
    return conflicts

def chain_conflicts(settings: Settings) -> list[tuple[str, str]]:
    """A pay-to address that is also the deposit address; two networks on one chain id."""
    conflicts = []
    pay_to, deposit = settings.chain_pay_to_address, settings.chain_deposit_address
    if pay_to and pay_to == deposit:
        conflicts.append(("chain_deposit_address",
                          "must differ from PASSGATE_CHAIN_PAY_TO_ADDRESS: a transfer is "
                          "either a payment or a deposit, never both"))
    try:
        settings.networks()
    except ValueError as exc:
        # The field checks leave one way to fail: two enabled networks, one chain id.
        conflicts.append(("chain_local_chain_id", f"{exc}; give the local chain an id of "
                          "its own (anvil's default is 31337)"))
    return conflicts
