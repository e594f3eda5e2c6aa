"""Imports every table so ``SQLModel.metadata`` is complete (Alembic, tests)."""

from sqlmodel import SQLModel

from app.agents.models import Agent
from app.audit.models import AuditEntry
from app.credits.models import LedgerEntry
from app.events.models import Event
from app.keys.models import ApiKey, KeySecret
from app.platforms.models import Platform
from app.wallets.models import Wallet, WalletChallenge

metadata = SQLModel.metadata

__all__ = [
    "Agent", "ApiKey", "AuditEntry", "Event", "KeySecret", "LedgerEntry", "Platform", "Wallet",
    "WalletChallenge", "metadata",
]
