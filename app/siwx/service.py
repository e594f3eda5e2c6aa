"""Sign-in-with-x: a wallet proves control of its address and acts as what it owns.

The ``SIGN-IN-WITH-X`` header is parsed, validated and verified with the x402 SDK
(``x402.extensions.sign_in_with_x``): domain and URI against ``PASSGATE_PUBLIC_URL``'s origin
(never the Host header), issue time (at most five minutes old, not in the future), expiry, a
nonce this server minted for exactly those times (``app.siwx.challenge``) and a chain passgate
takes payments on. The nonce is then spent (a unique row: single-use across processes, so a
resent proof costs no second verification), the signature verified (EIP-191 for an EOA;
EIP-1271 / EIP-6492 for a smart wallet, checked on the network's RPC), and the wallet's
belongings looked up:

- a live pass key bought from it with a signed authorization: the caller acts as that key;
- else the agent it is linked to: gateway calls billed to that agent's credits (scopes
  ``gateway:call``, ``balance:read``, ``usage:read``; ``key_id`` is the wallet's id).

On the gateway (``gateway:call``) either needs credits to bill (a balance above zero): a wallet
without them is anonymous there and gets the normal 402, so it pays per call instead.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from eth_account import Account
from eth_account.messages import encode_defunct
from siwe.siwe import check_contract_wallet_signature
from sqlalchemy.ext.asyncio import async_sessionmaker
from web3 import HTTPProvider, Web3
from x402.extensions.sign_in_with_x import (
    EVMMessageVerifier,
    SIWxPayload,
    SIWxValidationOptions,
    SIWxVerifyOptions,
    SIWxVerifyResult,
    extract_evm_chain_id,
    parse_siwx_header,
    validate_siwx_message,
    verify_siwx_signature,
)

from app.auth.principal import Principal
from app.auth.service import Authenticator
from app.credentials.format import KeyKind
from app.credentials.scopes import BALANCE_READ, GATEWAY, USAGE_READ
from app.db.types import utcnow
from app.db.uow import UnitOfWork
from app.errors import Unauthorized
from app.settings import Settings
from app.siwx import challenge, repository

log = logging.getLogger("passgate.siwx")

# A SIWE message with a handful of resources and a 6492-wrapped signature fits well inside.
MAX_HEADER_CHARS = 8192
WALLET_SCOPES = frozenset({GATEWAY, BALANCE_READ, USAGE_READ})


def refused(reason: str, message: str) -> Unauthorized:
    return Unauthorized(f"Sign-in-with-x refused: {message}", details={"reason": reason})


def _parse_time(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _evm_verifier(provider: HTTPProvider | None, chain_id: int) -> EVMMessageVerifier:
    """The SDK's ``EVMMessageVerifier`` hook, given the EIP-4361 message the SDK formatted: EOA
    recovery first, then the smart-wallet check of the ``siwe`` library the SDK verifies with
    (EIP-1271 ``isValidSignature``, or EIP-6492 for a wallet not deployed yet). Without the hook
    the SDK re-parses its own message with siwe's ABNF grammar (~35 ms of CPU per sign-in) only
    to run these same checks."""

    async def verify(*, address: str, message: str, signature: str) -> bool:
        signable = encode_defunct(text=message)
        try:
            recovered: str | None = Account.recover_message(signable, signature=signature)
        except Exception:  # a malformed signature is simply not this address's
            recovered = None
        if recovered is not None and recovered.lower() == address.lower():
            return True
        if provider is None:
            return False
        valid: bool = check_contract_wallet_signature(
            address=address, message=signable, signature=signature, chain_id=chain_id,
            w3=Web3(provider),
        )
        return valid

    return verify


def _verify_blocking(payload: SIWxPayload, provider: HTTPProvider | None) -> SIWxVerifyResult:
    """The SDK's verification, run to completion in a worker thread: a smart wallet's check is a
    synchronous RPC call (web3), which must not stall the event loop."""
    chain_id = extract_evm_chain_id(payload.chain_id)
    options = SIWxVerifyOptions(evm_verifier=_evm_verifier(provider, chain_id))
    return asyncio.run(verify_siwx_signature(payload, options))


class WalletSignIns:
    """``app.auth.access.WalletSignIn``: the guards call :meth:`sign_in` for a request with a
    ``SIGN-IN-WITH-X`` header and no API key."""

    def __init__(
        self, settings: Settings, sessions: async_sessionmaker[UnitOfWork],
        authenticator: Authenticator,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.authenticator = authenticator
        self.origin = challenge.origin(settings)
        self._networks = {n.caip2: n for n in settings.networks().values()}
        self._providers: dict[str, HTTPProvider] = {}

    def _provider(self, chain_id: str) -> HTTPProvider | None:
        network = self._networks.get(chain_id)
        if network is None or not network.rpc_urls:
            return None
        provider = self._providers.get(chain_id)
        if provider is None:
            timeout = self.settings.chain_rpc_timeout_seconds
            provider = HTTPProvider(network.rpc_urls[0], request_kwargs={"timeout": timeout})
            self._providers[chain_id] = provider
        return provider

    async def sign_in(self, header: str, scope: str | None) -> Principal | None:
        payload = self._parse(header)
        await self._validate(payload)
        expires_at = _parse_time(payload.expiration_time)
        if expires_at is None:  # a nonce of ours always comes with an expiry (checked above)
            raise refused("invalid_siwx_expiration_time", "the message has no expiry.")
        # Spent before the signature is checked: each challenge passgate issued buys at most one
        # verification (CPU, and an RPC call for a smart wallet), however often it is resent.
        async with self.sessions() as session:
            if not await repository.spend_nonce(session, payload.nonce,
                                                payload.address.lower()[:42], expires_at,
                                                utcnow()):
                raise refused("invalid_siwx_nonce",
                              "this nonce was already used; sign a fresh challenge.")
        address = await self._verify(payload)
        async with self.sessions() as session:
            principal = await self._owned(session, address, scope, utcnow())
        log.info("sign-in-with-x: %s signed in as %s", address,
                 principal.key_id if principal else "nothing usable (anonymous)")
        return principal

    @staticmethod
    def _parse(header: str) -> SIWxPayload:
        if len(header) > MAX_HEADER_CHARS:
            raise refused("invalid_siwx_header", "the SIGN-IN-WITH-X header is too long.")
        try:
            return parse_siwx_header(header.strip())
        except Exception as exc:  # base64, UTF-8, JSON or schema: all malformed
            message = str(exc) if isinstance(exc, ValueError) else "not base64 JSON"
            raise refused("invalid_siwx_header", message[:300]) from None

    async def _validate(self, payload: SIWxPayload) -> None:
        settings = self.settings

        def ours(nonce: str) -> bool:
            return challenge.nonce_is_ours(settings, nonce, payload.issued_at,
                                           payload.expiration_time)

        options = SIWxValidationOptions(max_age=challenge.CHALLENGE_SECONDS * 1000,
                                        check_nonce=ours)
        try:
            result = await validate_siwx_message(payload, self.origin, options)
        except Exception:  # a URL or time the SDK could not even parse
            raise refused("invalid_siwx_message", "the message's fields are malformed.") from None
        if not result.is_valid:
            raise refused(result.invalid_reason or "invalid_siwx_message",
                          result.invalid_message or "the message is not valid.")
        if payload.chain_id not in self._networks or payload.type != "eip191":
            supported = ", ".join(sorted(self._networks)) or "none"
            raise refused("invalid_siwx_unsupported_chain",
                          f"chain {payload.chain_id} ({payload.type}) is not one this server "
                          f"takes payments on ({supported}, eip191).")

    async def _verify(self, payload: SIWxPayload) -> str:
        provider = self._provider(payload.chain_id)
        try:
            result = await asyncio.to_thread(_verify_blocking, payload, provider)
        except Exception:  # the SDK formats the message before its own guard
            raise refused("invalid_siwx_signature", "the message could not be verified.") from None
        if not result.is_valid or not result.payer:
            raise refused(result.invalid_reason or "invalid_siwx_signature",
                          "the signature is not this address's.")
        return result.payer.lower()

    async def _owned(
        self, session: UnitOfWork, address: str, scope: str | None, now: datetime
    ) -> Principal | None:
        needs_credits = scope == GATEWAY
        key_id = await repository.active_pass_key(session, address, now)
        if key_id is not None:
            principal = await self.authenticator.principal_for_key(session, key_id)
            if principal is not None and (scope is None or scope in principal.scopes) and (
                not needs_credits or await self._has_credits(session, principal.agent_id)
            ):
                return principal
        wallet = await repository.linked_wallet(session, address)
        if wallet is None or (scope is not None and scope not in WALLET_SCOPES):
            return None
        agent = await repository.agent(session, wallet.agent_id)
        if agent is None or (needs_credits and agent.balance_micros <= 0):
            return None
        platform = await repository.platform(session, agent.platform_id)
        limits = self.settings.plan_limits(agent.plan)
        return Principal(
            key_id=wallet.id, kind=KeyKind.AGENT, agent_id=agent.id,
            platform_id=agent.platform_id, scopes=WALLET_SCOPES, plan=agent.plan,
            per_minute=limits.per_minute, per_day=limits.per_day, status="active",
            key_expires_at=None, secret_expires_at=None, agent_disabled=agent.disabled,
            platform_disabled=bool(platform and platform.disabled),
            label="sign-in-with-x", hint=f"{address[:6]}...{address[-4:]}",
            created_at=wallet.created_at,
        )

    @staticmethod
    async def _has_credits(session: UnitOfWork, agent_id: str | None) -> bool:
        agent = await repository.agent(session, agent_id)
        return agent is not None and agent.balance_micros > 0

