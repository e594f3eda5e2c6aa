"""Imports every table so ``SQLModel.metadata`` is complete (Alembic, tests)."""

from sqlmodel import SQLModel

from app.agents.models import Agent
from app.attention.models import AttentionItem
from app.audit.models import AuditEntry
from app.credits.models import LedgerEntry
from app.events.models import Event
from app.gateway.models import GatewayProvider, GatewayUsage, SpendCounter
from app.health.models import JobHeartbeat
from app.keys.models import ApiKey, KeySecret
from app.payments.models import Payment
from app.platforms.models import Platform
from app.settlement.models import SettlementSubmission, SettlementTransaction, SignerState
from app.transfers.models import ChainBlock, ChainTransfer, ChainWatcher
from app.wallets.models import Wallet, WalletChallenge
from app.webhooks.models import WebhookAttempt, WebhookEndpoint, WebhookMessage

metadata = SQLModel.metadata

__all__ = [
    "Agent", "ApiKey", "AttentionItem", "AuditEntry", "ChainBlock", "ChainTransfer",
    "ChainWatcher", "Event", "GatewayProvider", "GatewayUsage", "JobHeartbeat", "KeySecret",
    "LedgerEntry", "Payment", "Platform", "SettlementSubmission", "SettlementTransaction",
    "SignerState", "SpendCounter", "Wallet", "WalletChallenge", "WebhookAttempt",
    "WebhookEndpoint", "WebhookMessage", "metadata",
]
