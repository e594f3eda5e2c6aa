"""What the settlement signer is configured with, and what one step of it reports."""

from __future__ import annotations

from dataclasses import dataclass

from eth_account import Account
from pydantic import SecretStr

from app.settings import Settings
from chain.networks import Network


@dataclass(frozen=True, slots=True)
class SignerConfig:
    network: Network
    key: SecretStr
    address: str
    stuck_after_seconds: float
    fee_bump_percent: int
    poll_seconds: float
    max_backoff_seconds: float
    # Not worth starting when the authorization expires sooner than this.
    min_validity_seconds: float = 3.0

    @classmethod
    def from_settings(cls, settings: Settings, network: Network) -> SignerConfig | None:
        key = settings.chain_signer_private_key
        if key is None:
            return None
        return cls(
            network=network,
            key=key,
            address=str(Account.from_key(key.get_secret_value()).address),
            stuck_after_seconds=settings.settlement_stuck_after_seconds,
            fee_bump_percent=settings.settlement_fee_bump_percent,
            poll_seconds=settings.settlement_poll_seconds,
            max_backoff_seconds=settings.chain_max_backoff_seconds,
        )


@dataclass(frozen=True, slots=True)
class Step:
    """``delay``: seconds until the next step is due; None once the submission is final."""

    status: str
    delay: float | None
