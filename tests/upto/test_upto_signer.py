"""The settlement signer settling upto (Permit2) authorizations against anvil: exactly the
amount asked (never more than signed), and nothing when the payer invalidated the nonce."""

from __future__ import annotations

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from x402.mechanisms.evm.upto import UptoEvmClientScheme
from x402.schemas import PaymentRequirements

from app.signer.upto import request_upto_settlement
from chain.permit2 import PERMIT2_ADDRESS, encode_approve_permit2
from chain.x402.upto import upto_settle
from tests.fixtures.chain import encode_call, transact
from tests.fixtures.chainapp import ChainEnv
from tests.signer.test_signer import run_to_end, signer_for, submission

MAX = 50_000


async def _payer(env: ChainEnv) -> LocalAccount:
    payer: LocalAccount = await env.funded_account(usdc=1_000_000)
    await env.client.rpc("anvil_setBalance", [payer.address, hex(10**18)])
    await env.client.rpc("anvil_impersonateAccount", [payer.address])
    await transact(env.client, payer.address, encode_approve_permit2())
    return payer


def _signed(env: ChainEnv, payer: LocalAccount, facilitator: str) -> dict:
    requirements = PaymentRequirements(
        scheme="upto", network=env.network.caip2, asset=env.network.usdc_address,
        amount=str(MAX), pay_to=env.pay_to.address, max_timeout_seconds=300,
        extra={"name": "USDC", "version": "2", "facilitatorAddress": facilitator},
    )
    return UptoEvmClientScheme(payer).create_payment_payload(requirements)


async def _request(env: ChainEnv, permit: dict, amount: int, ref: str) -> str:
    async with env.sessions() as session:
        found = await request_upto_settlement(session, env.network, upto_settle(permit, amount),
                                              purpose_ref=ref)
        await session.commit()
        return found.id


async def test_an_upto_authorization_settles_exactly_the_amount_asked(chain_env) -> None:
    signer = await signer_for(chain_env)
    payer = await _payer(chain_env)
    before = await chain_env.client.balance_of(chain_env.pay_to.address)
    permit = _signed(chain_env, payer, signer.account.address)

    sid = await _request(chain_env, permit, 1_234, "pay_upto_signer_1")
    step = await run_to_end(signer, sid)

    assert step.status == "mined"
    assert await chain_env.client.balance_of(chain_env.pay_to.address) == before + 1_234
    assert await chain_env.client.balance_of(payer.address) == 1_000_000 - 1_234
    assert (await submission(chain_env, sid)).permit2 is not None


async def test_a_nonce_the_payer_invalidated_pays_nothing(chain_env) -> None:
    signer = await signer_for(chain_env)
    payer = await _payer(chain_env)
    before = await chain_env.client.balance_of(chain_env.pay_to.address)
    permit = _signed(chain_env, payer, signer.account.address)
    nonce = int(permit["permit2Authorization"]["nonce"])
    await transact(chain_env.client, payer.address,
                   encode_call("invalidateUnorderedNonces(uint256,uint256)",
                               nonce >> 8, 1 << (nonce & 0xFF)), to=PERMIT2_ADDRESS)

    sid = await _request(chain_env, permit, 1_000, "pay_upto_signer_2")
    step = await run_to_end(signer, sid)

    assert step.status == "failed"
    assert "Permit2 nonce" in ((await submission(chain_env, sid)).last_error or "")
    assert await chain_env.client.balance_of(chain_env.pay_to.address) == before


async def test_more_than_signed_is_never_requested(chain_env) -> None:
    payer = Account.create()
    permit = _signed(chain_env, payer, Account.create().address)  # type: ignore[arg-type]

    with pytest.raises(ValueError, match="at most the signed maximum"):
        await _request(chain_env, permit, MAX + 1, "pay_upto_signer_3")
