"""x402 payments: answer with requirements, verify and record a payment exactly once, follow it
to settlement, and replay the outcome of an identical retry.

A payment is recorded before anything is settled, under unique (network, nonce) and (network,
tx hash) indexes: a second request carrying the same payment either is the same purchase
(same fingerprint: it gets the same outcome) or is refused with PAYMENT_ALREADY_USED.

Flows that need several transactions: a paid route records the payment and hands a signed one
to the settlement signer in one transaction, then waits for it to settle without holding one
(:meth:`Payments.wait_until_final`, each read its own), then delivers in another (the pass
purchase: ``app.passes.service``; a paid gateway call: ``app.gateway.paid``). The status changes
made by the signer's outcome, the chain watcher and expiry are ``app.payments.transitions``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping
from typing import Any, Literal

from app.db.models.payments import Payment
from app.db.paging import PageParams
from app.db.uow import UnitOfWork
from app.logs import context as log_context
from app.payments import acceptance, repository
from app.payments.acceptance import PaidRequest
from app.payments.networks import PaymentChain
from app.payments.repository import forget_kept_results
from app.payments.transitions import due_to_expire, expire, mark_failed
from app.payments.waiter import SettlementWaiter
from app.signer.service import request_settlement
from chain.usdc import TransferAuthorization
from chain.x402 import PaymentChallenge, settlement_response_header

# What other areas and the workers use: the payment flow, and the status changes they make
# (defined in app.payments.transitions).
__all__ = [
    "FINAL", "PaidRequest", "Payments", "due_to_expire", "expire", "find", "forget_kept_results",
    "get", "mark_failed", "search",
]

FINAL = frozenset({"settled", "failed", "expired"})


class Payments:
    """The payment flow of one API process (chain access, waiting for settlement)."""

    def __init__(self, chain: PaymentChain, waiter: SettlementWaiter, redis: Any,
                 redis_prefix: str) -> None:
        self.chain = chain
        self.waiter = waiter
        # Settlement notifications (None: in-process only, the embedded mode).
        self.redis = redis
        self.redis_prefix = redis_prefix

    # -- challenge and acceptance -------------------------------------------------------

    def challenge(self, paid: PaidRequest) -> PaymentChallenge:
        return self.chain.challenge(paid.price_micros, paid.resource_url, paid.description,
                                    paid.extensions, paid.upto_max_micros)

    async def accept(
        self, session: UnitOfWork, paid: PaidRequest, headers: Mapping[str, str], *,
        signed_only: bool = False,
    ) -> Payment:
        """Verify the payment in ``headers`` and record it, or find the one it repeats
        (``app.payments.acceptance.accept``)."""
        return await acceptance.accept(self.chain, session, paid, headers,
                                       signed_only=signed_only)

    # -- settlement ----------------------------------------------------------------------

    async def request_settlement(self, session: UnitOfWork, payment: Payment) -> None:
        """Hand a freshly recorded EIP-3009 payment to the settlement signer (after commit).

        Pushed transfers need no signer: the chain watcher confirms them.
        """
        if payment.scheme != "exact" or payment.status != "pending" or not payment.authorization:
            return
        auth = payment.authorization
        await request_settlement(
            session,
            self.chain.networks[payment.network],
            TransferAuthorization(
                from_address=auth["from"], to_address=auth["to"], value=int(auth["value"]),
                valid_after=int(auth["validAfter"]), valid_before=int(auth["validBefore"]),
                nonce=auth["nonce"],
            ),
            auth["signature"],
            purpose_ref=payment.id,
        )

    async def get(self, session: UnitOfWork, payment_id: str) -> Payment:
        payment = await repository.get(session, payment_id)
        log_context.bind(payment_id=payment.id)
        return payment

    async def wait_until_final(
        self, sessions: Any, payment_id: str, within: float
    ) -> Payment:
        """Wait (without holding a transaction) until the payment settles, fails, expires,
        or ``timeout`` passes; returns its latest state."""
        deadline = time.monotonic() + within
        with self.waiter.watch(payment_id) as watch:
            while True:
                async with sessions() as session:
                    payment = await self.get(session, payment_id)
                remaining = deadline - time.monotonic()
                if payment.status in FINAL or remaining <= 0:
                    return payment
                await watch.wait(remaining)

    def response_header(self, payment: Payment) -> tuple[str, str]:
        network = self.chain.networks[payment.network]
        version: Literal[1, 2] = 1 if payment.scheme == "push" or payment.x402_version == 1 else 2
        return settlement_response_header(
            version, success=payment.status == "settled", transaction=payment.tx_hash or "",
            network=network, payer=payment.payer or None,
            amount=str(payment.amount_micros) if payment.scheme == "upto" else None,
        )

    # -- claim tokens --------------------------------------------------------------------

    @staticmethod
    def new_claim_token(payment: Payment, pepper: str) -> str:
        """A fresh token (only its hash is kept); each 202 answer hands out a new one."""
        token = "clt_" + secrets.token_urlsafe(24)
        payment.claim_token_hash = _token_hash(pepper, token)
        return token

    @staticmethod
    def check_claim_token(payment: Payment, pepper: str, token: str | None) -> bool:
        if not token or payment.claim_token_hash is None:
            return False
        return hmac.compare_digest(payment.claim_token_hash, _token_hash(pepper, token))

    async def close(self) -> None:
        await self.waiter.close()
        await self.chain.close()


def _token_hash(pepper: str, token: str) -> str:
    return hmac.new(pepper.encode(), token.encode(), hashlib.sha256).hexdigest()


async def get(session: UnitOfWork, payment_id: str) -> Payment:
    """One payment, or NOT_FOUND."""
    return await repository.get(session, payment_id)


async def find(session: UnitOfWork, payment_id: str) -> Payment | None:
    """One payment, or None."""
    return await repository.find(session, payment_id)


async def search(
    session: UnitOfWork, params: PageParams, *, status: str | None = None,
    network: str | None = None, payer: str | None = None, purpose: str | None = None,
) -> tuple[list[Payment], str | None]:
    """Payments newest first, filtered; ``payer`` is an address (any case)."""
    return await repository.search(session, params, status=status, network=network,
                                   payer=payer, purpose=purpose)
