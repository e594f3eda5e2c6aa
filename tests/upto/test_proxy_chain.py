"""Permit2 (canonical creation code, canonical address) and the test upto proxy on anvil, driven
by the official SDK's upto client: any amount up to the signed maximum, to the signed recipient,
by the signed facilitator only, once."""

from __future__ import annotations

import pytest
from eth_account import Account
from x402.mechanisms.evm.upto import UptoEvmClientScheme
from x402.schemas import PaymentRequirements

from chain.client import ChainClient
from chain.errors import ExecutionReverted
from chain.permit2 import (
    PERMIT2_ADDRESS,
    UPTO_PROXY_ADDRESS,
    UptoSettle,
    encode_approve_permit2,
    encode_upto_settle,
)
from tests.fixtures.chain import encode_call, transact

MAX = 50_000


async def _balance(client: ChainClient, address: str) -> int:
    return await client.balance_of(address)


def _signed(payer: Account, pay_to: str, facilitator: str, asset: str) -> dict[str, object]:
    requirements = PaymentRequirements(
        scheme="upto", network="eip155:84532", asset=asset, amount=str(MAX), pay_to=pay_to,
        max_timeout_seconds=300,
        extra={"name": "USDC", "version": "2", "facilitatorAddress": facilitator},
    )
    return UptoEvmClientScheme(payer).create_payment_payload(requirements)


def _settle_call(payload: dict[str, object], amount: int) -> UptoSettle:
    auth = payload["permit2Authorization"]
    assert isinstance(auth, dict)
    return UptoSettle(
        token=auth["permitted"]["token"], max_amount=int(auth["permitted"]["amount"]),
        nonce=int(auth["nonce"]), deadline=int(auth["deadline"]), owner=auth["from"],
        to=auth["witness"]["to"], facilitator=auth["witness"]["facilitator"],
        valid_after=int(auth["witness"]["validAfter"]), signature=str(payload["signature"]),
        amount=amount,
    )


async def test_settles_usage_up_to_the_signed_maximum(devchain, chain_client) -> None:
    payer = Account.create()
    facilitator, pay_to = devchain.accounts[7].address, Account.create().address
    await chain_client.rpc("anvil_setBalance", [payer.address, hex(10**18)])
    await transact(chain_client, devchain.accounts[0].address,
                   encode_call("mint(address,uint256)", payer.address, 1_000_000))
    await chain_client.rpc("anvil_impersonateAccount", [payer.address])
    await transact(chain_client, payer.address, encode_approve_permit2())
    assert len(await chain_client.rpc("eth_getCode", [PERMIT2_ADDRESS, "latest"])) > 2

    payload = _signed(payer, pay_to, facilitator, chain_client.token_address)
    over = encode_upto_settle(_settle_call(payload, MAX + 1))
    with pytest.raises(ExecutionReverted):
        await transact(chain_client, facilitator, over, to=UPTO_PROXY_ADDRESS)
    # Only the facilitator the client signed for may settle.
    stranger = devchain.accounts[6].address
    with pytest.raises(ExecutionReverted):
        await transact(chain_client, stranger, encode_upto_settle(_settle_call(payload, 1)),
                       to=UPTO_PROXY_ADDRESS)

    await transact(chain_client, facilitator, encode_upto_settle(_settle_call(payload, 1_234)),
                   to=UPTO_PROXY_ADDRESS)
    assert await _balance(chain_client, pay_to) == 1_234
    assert await _balance(chain_client, payer.address) == 1_000_000 - 1_234
    # One signature settles once (Permit2's nonce).
    with pytest.raises(ExecutionReverted):
        await transact(chain_client, facilitator,
                       encode_upto_settle(_settle_call(payload, 1)), to=UPTO_PROXY_ADDRESS)
    assert UPTO_PROXY_ADDRESS == "0x4020A4f3b7b90ccA423B9fabCc0CE57C6C240002"
