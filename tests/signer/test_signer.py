"""The settlement signer against anvil: one transfer per authorization, whatever happens."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount

from app.db.models.signer import SettlementSubmission, SettlementTransaction
from app.errors import Conflict
from app.integrations.chain import advance, prepare
from app.signer import service
from app.signer.config import SignerConfig, Step
from chain.anvil_binary import free_port
from chain.client import ChainClient
from chain.usdc import (
    SignedAuthorization,
    TokenDomain,
    cancel_authorization_typed_data,
    encode_transfer_with_authorization,
    new_authorization,
    sign_transfer_authorization,
)
from tests.fixtures.chain import encode_call, transact
from tests.fixtures.chainapp import USDC, ChainEnv, build_env
from tests.fixtures.rpcproxy import rpc_proxy

WITHIN = 30.0


@dataclass
class Signer:
    env: ChainEnv
    account: LocalAccount

    @property
    def config(self) -> SignerConfig:
        settings = self.env.settings.model_copy(
            update={"chain_signer_private_key": _secret(self.account.key.hex())}
        )
        config = SignerConfig.from_settings(settings, self.env.network)
        assert config is not None
        return config


def _secret(value: str):
    from pydantic import SecretStr

    return SecretStr(value if value.startswith("0x") else "0x" + value)


async def signer_for(env: ChainEnv) -> Signer:
    """A fresh settlement key with gas money (its nonce starts at 0 on the node)."""
    account: LocalAccount = Account.create()
    await env.client.rpc("anvil_setBalance", [account.address, hex(10**20)])
    return Signer(env, account)


async def authorize(
    env: ChainEnv, payer: LocalAccount, amount: int, **kwargs
) -> SignedAuthorization:
    authorization = new_authorization(payer.address, env.pay_to.address, amount, **kwargs)
    return sign_transfer_authorization(
        payer.key, authorization, TokenDomain.for_network(env.network)
    )


async def request(env: ChainEnv, signed: SignedAuthorization, ref: str) -> str:
    async with env.sessions() as session:
        submission = await service.request_settlement(
            session, env.network, signed.authorization, signed.signature, purpose_ref=ref
        )
        await session.commit()
        return submission.id


async def run_to_end(
    signer: Signer, submission_id: str, client: ChainClient | None = None, within: float = WITHIN
) -> Step:
    """Call ``advance`` as the actor would (honouring short delays) until the step is final."""
    deadline = time.monotonic() + within
    while True:
        step = await advance(
            signer.env.sessions, client or signer.env.client, signer.config, submission_id
        )
        if step.delay is None:
            return step
        assert time.monotonic() < deadline, f"not final within {within}s: {step}"
        await asyncio.sleep(min(step.delay, 0.2))


async def submission(env: ChainEnv, submission_id: str) -> SettlementSubmission:
    async with env.sessions() as session:
        return await service.get(session, submission_id)


async def transactions(env: ChainEnv, submission_id: str) -> list[SettlementTransaction]:
    async with env.sessions() as session:
        return await service.transactions_of(session, submission_id)


async def test_a_valid_authorization_is_settled_on_chain(chain_env: ChainEnv):
    # Given a payer's signed authorization of 3 USDC to the payTo address
    signer = await signer_for(chain_env)
    payer = await chain_env.funded_account(usdc=10 * USDC)
    signed = await authorize(chain_env, payer, 3 * USDC)
    before = await chain_env.client.balance_of(chain_env.pay_to.address)
    # When it is requested and the signer runs
    sid = await request(chain_env, signed, "pay_valid")
    step = await run_to_end(signer, sid)
    # Then it is mined: the money moved once, by the signer's transaction
    assert step.status == "mined"
    done = await submission(chain_env, sid)
    receipt = await chain_env.client.get_receipt(done.tx_hash or "")
    assert receipt is not None
    assert receipt.status == 1
    assert receipt.from_address == signer.account.address
    assert await chain_env.client.balance_of(chain_env.pay_to.address) == before + 3 * USDC
    async with chain_env.sessions() as session:
        outcome = await service.outcome(session, sid)
    assert outcome.final
    assert outcome.settled
    assert outcome.tx_hash == done.tx_hash


async def test_the_same_reference_is_one_submission(chain_env: ChainEnv):
    payer = await chain_env.funded_account(usdc=0)
    signed = await authorize(chain_env, payer, USDC)
    other = await authorize(chain_env, payer, USDC)
    first = await request(chain_env, signed, "pay_same_ref")
    # When the same request comes again it is the same submission
    assert await request(chain_env, signed, "pay_same_ref") == first
    # and another authorization under that reference is refused
    with pytest.raises(Conflict):
        await request(chain_env, other, "pay_same_ref")


async def test_the_same_authorization_twice_moves_money_once(chain_env: ChainEnv):
    # Given one authorization submitted under two references, the second while the first is
    # in flight, and a third after the first is mined
    signer = await signer_for(chain_env)
    payer = await chain_env.funded_account(usdc=10 * USDC)
    signed = await authorize(chain_env, payer, 2 * USDC)
    before = await chain_env.client.balance_of(payer.address)
    first = await request(chain_env, signed, "pay_twice_1")
    second = await request(chain_env, signed, "pay_twice_2")
    await prepare(chain_env.sessions, chain_env.client, signer.config, first, broadcast=False)
    # When the signer gets to the second, then finishes the first, then sees a third
    second_step = await run_to_end(signer, second)
    first_step = await run_to_end(signer, first)
    third = await request(chain_env, signed, "pay_twice_3")
    third_step = await run_to_end(signer, third)
    # Then one transfer happened; the others are reported as already used, without a nonce
    assert first_step.status == "mined"
    assert second_step.status == "already_used"
    assert (await submission(chain_env, second)).duplicate_of == first
    assert third_step.status == "already_used"
    assert await transactions(chain_env, second) == []
    assert await transactions(chain_env, third) == []
    assert await chain_env.client.balance_of(payer.address) == before - 2 * USDC
    assert await chain_env.client.get_nonce(signer.account.address) == 1


async def test_a_worker_killed_between_record_and_broadcast_never_double_submits(
    chain_env: ChainEnv,
):
    # Given a settlement whose transaction was recorded but never broadcast (the worker died)
    signer = await signer_for(chain_env)
    payer = await chain_env.funded_account(usdc=10 * USDC)
    signed = await authorize(chain_env, payer, 4 * USDC)
    sid = await request(chain_env, signed, "pay_killed")
    step = await prepare(chain_env.sessions, chain_env.client, signer.config, sid, broadcast=False)
    recorded = await transactions(chain_env, sid)
    assert step.status == "signed"
    assert len(recorded) == 1
    assert await chain_env.client.get_receipt(recorded[0].tx_hash) is None
    assert await chain_env.client.get_nonce(signer.account.address) == 0
    # When a fresh process (new client) picks it up
    async with ChainClient.for_network(chain_env.network, timeout=5) as fresh:
        final = await run_to_end(signer, sid, client=fresh)
    # Then the recorded transaction itself is what got mined: one nonce, one transfer
    assert final.status == "mined"
    assert [t.tx_hash for t in await transactions(chain_env, sid)] == [recorded[0].tx_hash]
    assert (await submission(chain_env, sid)).tx_hash == recorded[0].tx_hash
    assert await chain_env.client.get_nonce(signer.account.address) == 1
    assert await chain_env.client.balance_of(payer.address) == 6 * USDC


async def test_an_authorization_used_by_someone_else_first_is_already_used(chain_env: ChainEnv):
    # Given an authorization that another party submitted directly to the token
    signer = await signer_for(chain_env)
    payer = await chain_env.funded_account(usdc=10 * USDC)
    signed = await authorize(chain_env, payer, USDC)
    sid = await request(chain_env, signed, "pay_front_run")
    outsider = chain_env.chain.accounts[1].address
    a = signed.authorization
    front_run = await transact(
        chain_env.client,
        outsider,
        encode_call(
            "transferWithAuthorization(address,address,uint256,uint256,uint256,bytes32,bytes)",
            a.from_address,
            a.to_address,
            a.value,
            a.valid_after,
            a.valid_before,
            bytes.fromhex(a.nonce[2:]),
            bytes.fromhex(signed.signature[2:]),
        ),
    )
    # When the signer gets to it
    step = await run_to_end(signer, sid)
    # Then it is reported as already used, with the transaction that paid, and the signer
    # spent nothing
    assert step.status == "already_used"
    assert (await submission(chain_env, sid)).tx_hash == front_run
    assert await transactions(chain_env, sid) == []
    assert await chain_env.client.get_nonce(signer.account.address) == 0


@pytest.mark.parametrize("burn", ["cancel", "other_authorization"])
async def test_a_nonce_the_payer_burned_without_paying_fails(chain_env: ChainEnv, burn: str):
    # Given a verified authorization whose payer then spends its nonce without paying us:
    # with cancelAuthorization, or with a 1-unit authorization on the same nonce to itself
    signer = await signer_for(chain_env)
    payer = await chain_env.funded_account(usdc=10 * USDC)
    signed = await authorize(chain_env, payer, 10 * USDC)
    sid = await request(chain_env, signed, f"pay_burned_{burn}")
    a = signed.authorization
    domain = TokenDomain.for_network(chain_env.network)
    if burn == "cancel":
        signed_cancel = payer.sign_message(encode_typed_data(
            full_message=cancel_authorization_typed_data(payer.address, a.nonce, domain)
        ))
        call = encode_call(
            "cancelAuthorization(address,bytes32,uint8,bytes32,bytes32)", payer.address,
            bytes.fromhex(a.nonce[2:]), signed_cancel.v, signed_cancel.r.to_bytes(32, "big"),
            signed_cancel.s.to_bytes(32, "big"),
        )
    else:
        cheap = new_authorization(payer.address, Account.create().address, 1, nonce=a.nonce)
        burned = sign_transfer_authorization(payer.key, cheap, domain)
        call = encode_call(
            "transferWithAuthorization(address,address,uint256,uint256,uint256,bytes32,bytes)",
            cheap.from_address, cheap.to_address, cheap.value, cheap.valid_after,
            cheap.valid_before, bytes.fromhex(cheap.nonce[2:]),
            bytes.fromhex(burned.signature[2:]),
        )
    received = await chain_env.client.balance_of(chain_env.pay_to.address)
    await transact(chain_env.client, payer.address, call)
    # When the signer gets to it
    step = await run_to_end(signer, sid)
    # Then it failed: nothing reached the pay-to address, nothing counts as paid
    assert step.status == "failed"
    found = await submission(chain_env, sid)
    assert found.tx_hash is None
    assert "without paying" in (found.last_error or "")
    assert await chain_env.client.balance_of(chain_env.pay_to.address) == received
    assert await transactions(chain_env, sid) == []


@pytest.mark.parametrize("case", ["bad_signature", "insufficient_balance", "expired"])
async def test_an_authorization_that_cannot_succeed_fails_without_spending_a_nonce(
    chain_env: ChainEnv, case: str
):
    signer = await signer_for(chain_env)
    payer = await chain_env.funded_account(usdc=USDC)
    if case == "bad_signature":
        good = await authorize(chain_env, payer, USDC)
        impostor = Account.create()
        signed = sign_transfer_authorization(
            impostor.key, good.authorization, TokenDomain.for_network(chain_env.network)
        )
        expected = "failed"
    elif case == "insufficient_balance":
        signed = await authorize(chain_env, payer, 50 * USDC)
        expected = "failed"
    else:
        signed = await authorize(chain_env, payer, USDC, valid_seconds=1)
        expected = "expired"
    sid = await request(chain_env, signed, f"pay_{case}")
    step = await run_to_end(signer, sid)
    assert step.status == expected
    assert (await submission(chain_env, sid)).last_error
    assert await transactions(chain_env, sid) == []
    assert await chain_env.client.get_nonce(signer.account.address) == 0


async def test_the_node_down_is_retried_with_backoff(chain_env: ChainEnv):
    # Given a queued settlement and an RPC URL where nothing listens
    signer = await signer_for(chain_env)
    payer = await chain_env.funded_account(usdc=10 * USDC)
    signed = await authorize(chain_env, payer, USDC)
    sid = await request(chain_env, signed, "pay_rpc_down")
    down = ChainClient(
        f"http://127.0.0.1:{free_port()}", token_address=chain_env.chain.token_address, timeout=1
    )
    # When the signer tries twice
    first = await advance(chain_env.sessions, down, signer.config, sid)
    second = await advance(chain_env.sessions, down, signer.config, sid)
    await down.close()
    # Then nothing changed but the error and a growing delay
    assert first.status == second.status == "queued"
    assert first.delay is not None
    assert second.delay is not None
    assert second.delay > first.delay
    row = await submission(chain_env, sid)
    assert row.attempts == 2
    assert "RpcUnavailable" in (row.last_error or "")
    # and once the node answers, it settles
    assert (await run_to_end(signer, sid)).status == "mined"


async def test_the_nonce_is_recovered_from_the_node_when_the_key_was_used_elsewhere(
    chain_env: ChainEnv,
):
    # Given a signer whose key sent two transactions outside passgate
    signer = await signer_for(chain_env)
    for nonce in range(2):
        raw = signer.account.sign_transaction(
            {
                "type": 2,
                "chainId": chain_env.chain.chain_id,
                "nonce": nonce,
                "to": signer.account.address,
                "value": 0,
                "gas": 21_000,
                "maxFeePerGas": 50 * 10**9,
                "maxPriorityFeePerGas": 10**9,
            }
        ).raw_transaction
        await chain_env.client.send_raw_transaction(bytes(raw))
    payer = await chain_env.funded_account(usdc=10 * USDC)
    sid = await request(chain_env, await authorize(chain_env, payer, USDC), "pay_nonce_sync")
    # When it settles
    step = await run_to_end(signer, sid)
    # Then it used the node's next nonce
    assert step.status == "mined"
    assert (await submission(chain_env, sid)).tx_nonce == 2


async def test_a_stuck_transaction_is_replaced_with_higher_fees(devchain_factory, settings_factory):
    # Given a chain that mines only on demand, and a short patience
    chain = devchain_factory()
    env = await build_env(chain, settings_factory, settlement_stuck_after_seconds=0.3)
    async with env:
        signer = await signer_for(env)
        payer = await env.funded_account(usdc=10 * USDC)
        sid = await request(env, await authorize(env, payer, 5 * USDC), "pay_stuck")
        await env.client.rpc("evm_setAutomine", [False])
        # When the transaction sits in the mempool past the patience
        first = await advance(env.sessions, env.client, signer.config, sid)
        assert first.status == "broadcast"
        await asyncio.sleep(0.4)
        second = await advance(env.sessions, env.client, signer.config, sid)
        txs = await transactions(env, sid)
        # Then a replacement with the same nonce and higher fees is recorded and sent
        assert second.status == "broadcast"
        assert len(txs) == 2
        newer, older = txs
        assert newer.nonce == older.nonce
        assert newer.max_fee_per_gas > older.max_fee_per_gas
        assert newer.max_priority_fee_per_gas > older.max_priority_fee_per_gas
        # and once a block is mined, the replacement is the one that settled, once
        await env.mine()
        await env.client.rpc("evm_setAutomine", [True])
        final = await run_to_end(signer, sid)
        assert final.status == "mined"
        assert (await submission(env, sid)).tx_hash == newer.tx_hash
        assert await env.client.get_receipt(older.tx_hash) is None
        assert await env.client.balance_of(payer.address) == 5 * USDC


async def _freed_nonce_then_next_settles(
    env: ChainEnv, signer: Signer, sid: str, payer: LocalAccount, expected: str
) -> None:
    """The submission ended ``expected`` with its settle replaced by a mined 0-value
    transaction of the same nonce, nothing paid, and the signer's next settlement is mined."""
    row = await submission(env, sid)
    assert row.status == expected, row.last_error
    newest, settle = await transactions(env, sid)
    assert settle.kind == "settle"
    assert newest.nonce == settle.nonce
    assert row.tx_hash == newest.tx_hash
    receipt = await env.client.get_receipt(newest.tx_hash)
    assert receipt is not None
    assert receipt.status == 1
    assert await env.client.get_receipt(settle.tx_hash) is None
    assert await env.client.balance_of(payer.address) == 10 * USDC
    # A settle left holding its nonce would keep this one out of every block.
    after = await request(env, await authorize(env, payer, USDC), sid + "_after")
    assert (await run_to_end(signer, after)).status == "mined"
    assert (await submission(env, after)).tx_nonce == settle.nonce + 1
    assert await env.client.balance_of(payer.address) == 9 * USDC


async def test_a_settlement_the_node_calls_invalid_frees_its_nonce_and_fails(
    devchain_factory, settings_factory
):
    # Given blocks whose gas limit is below what the signer asks for a settlement
    env = await build_env(devchain_factory(), settings_factory)
    async with env:
        signer = await signer_for(env)
        payer = await env.funded_account(usdc=10 * USDC)
        signed = await authorize(env, payer, USDC)
        sid = await request(env, signed, "pay_invalid")
        gas = await env.client.estimate_gas(
            sender=signer.account.address, to=env.chain.token_address,
            data=encode_transfer_with_authorization(signed.authorization, signed.signature),
        )
        normal = (await env.client.rpc("eth_getBlockByNumber", ["latest", False]))["gasLimit"]
        await env.client.rpc("anvil_setBlockGasLimit", [hex(gas * 110 // 100)])
        # When the signer runs it to the end
        step = await run_to_end(signer, sid)
        # Then it failed, its nonce freed by a 0-value transaction instead of left in a gap
        assert step.status == "failed"
        row = await submission(env, sid)
        assert "refused" in (row.last_error or "")
        await env.client.rpc("anvil_setBlockGasLimit", [normal])
        await _freed_nonce_then_next_settles(env, signer, sid, payer, "failed")
        assert not await env.client.authorization_state(
            payer.address, signed.authorization.nonce
        )


@pytest.mark.parametrize(
    ("valid_seconds", "stuck_after", "expected"),
    [(600, 1.0, "failed"), (5, 600.0, "expired")],
    ids=["refused-past-patience", "refused-until-expiry"],
)
async def test_a_refusal_in_unknown_words_is_retried_then_its_nonce_is_freed(
    devchain_factory, settings_factory, valid_seconds: int, stuck_after: float, expected: str
):
    # Given a node that refuses settlements in words passgate does not know
    chain = devchain_factory()
    env = await build_env(chain, settings_factory, settlement_stuck_after_seconds=stuck_after)
    async with env:
        signer = await signer_for(env)
        payer = await env.funded_account(usdc=10 * USDC)
        signed = await authorize(env, payer, USDC, valid_seconds=valid_seconds)
        selector = encode_transfer_with_authorization(
            signed.authorization, signed.signature
        )[2:10]
        sid = await request(env, signed, f"pay_unknown_{expected}")
        with rpc_proxy(chain.rpc_url) as proxy:
            proxy.override = lambda method, params, batched: (
                {"error": {"code": -32000, "message": "the pool says no today"}}
                if method == "eth_sendRawTransaction" and selector in params[0] else None
            )
            client = ChainClient(proxy.url, token_address=chain.token_address, timeout=2)
            try:
                # When the signer tries
                started = time.monotonic()
                first = await advance(env.sessions, client, signer.config, sid)
                # Then it is retried with backoff first, the node's words recorded
                assert first.status == "signed"
                assert first.delay is not None
                assert first.delay > 0
                assert "the pool says no today" in ((await submission(env, sid)).last_error or "")
                # and in the end its nonce is freed: the payment failed, or expired
                step = await run_to_end(signer, sid, client)
                assert step.status == expected
                assert time.monotonic() - started >= min(stuck_after, valid_seconds - 3.0)
                await _freed_nonce_then_next_settles(env, signer, sid, payer, expected)
            finally:
                await client.close()
