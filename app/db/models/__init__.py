"""Every table, one module per business area: the lowest layer, which any area may import
(areas never import each other just to reach a table). Importing this package registers all of
them on ``SQLModel.metadata`` (Alembic, tests)."""

from sqlmodel import SQLModel

from app.db.models.agents import Agent
from app.db.models.attention import AttentionItem
from app.db.models.audit import AuditEntry
from app.db.models.credits import LedgerEntry
from app.db.models.events import Event
from app.db.models.gateway import GatewayProvider, GatewayUsage, SpendCounter
from app.db.models.health import JobHeartbeat
from app.db.models.keys import ApiKey, KeySecret
from app.db.models.payments import Payment
from app.db.models.platforms import Platform
from app.db.models.signer import SettlementSubmission, SettlementTransaction, SignerState
from app.db.models.siwx import SiwxNonce
from app.db.models.transfers import ChainBlock, ChainTransfer, ChainWatcher
from app.db.models.wallets import Wallet, WalletChallenge
from app.db.models.webhooks import WebhookAttempt, WebhookEndpoint, WebhookMessage

metadata = SQLModel.metadata

__all__ = [
    "Agent", "ApiKey", "AttentionItem", "AuditEntry", "ChainBlock", "ChainTransfer",
    "ChainWatcher", "Event", "GatewayProvider", "GatewayUsage", "JobHeartbeat", "KeySecret",
    "LedgerEntry", "Payment", "Platform", "SettlementSubmission", "SettlementTransaction",
    "SignerState", "SiwxNonce", "SpendCounter", "Wallet", "WalletChallenge", "WebhookAttempt",
    "WebhookEndpoint", "WebhookMessage", "metadata",
]
