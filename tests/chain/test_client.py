"""ChainClient against a real anvil: blocks, Transfer logs, receipts, nonces, fees, raw txs."""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest
from eth_account import Account

from chain.client import ChainClient
from chain.devchain import DevChain
from chain.errors import TransactionRejected
from tests.fixtures.chain import encode_call, transact, wait_for_receipt

pytestmark = pytest.mark.chain

ZERO = "0x0000000000000000000000000000000000000000"


async def test_client_reports_chain_id_and_head(chain_client: ChainClient) -> None:
    assert await chain_client.chain_id() == 84532
    head = await chain_client.block_number()
    header = await chain_client.get_block(head)
    assert header is not None
    assert header.number == head
    parent = await chain_client.get_block(head - 1)
    assert parent is not None
    assert header.parent_hash == parent.hash
    assert header.hash.startswith("0x")
    assert len(header.hash) == 66


async def test_block_beyond_the_head_is_none(chain_client: ChainClient) -> None:
    head = await chain_client.block_number()
    assert await chain_client.get_block(head + 1000) is None


async def test_transfer_logs_are_filtered_by_recipient_and_decoded(
    devchain: DevChain, chain_client: ChainClient
) -> None:
    # Given mints to three fresh addresses and one transfer between them
    alice, bob, carol = (Account.create().address for _ in range(3))
    minter = devchain.accounts[0].address
    start = await chain_client.block_number() + 1
    for address, amount in ((alice, 1_000_000), (bob, 2_000_000), (carol, 3_000_000)):
        await transact(chain_client, minter, encode_call("mint(address,uint256)", address, amount))
    await chain_client.rpc("anvil_impersonateAccount", [alice])
    await chain_client.rpc("anvil_setBalance", [alice, hex(10**18)])
    transfer_tx = await transact(
        chain_client, alice, encode_call("transfer(address,uint256)", carol, 250_000)
    )
    end = await chain_client.block_number()
    # When asking for transfers to alice and carol only
    logs = await chain_client.get_transfer_logs(start, end, to_addresses=[alice, carol.lower()])
    # Then exactly those come back, oldest first, decoded
    assert [(log.from_address, log.to_address, log.value) for log in logs] == [
        (ZERO, alice, 1_000_000),
        (ZERO, carol, 3_000_000),
        (alice, carol, 250_000),
    ]
    last = logs[-1]
    assert last.tx_hash == transfer_tx
    receipt = await chain_client.get_receipt(transfer_tx)
    assert receipt is not None
    assert (last.block_number, last.block_hash) == (receipt.block_number, receipt.block_hash)
    assert receipt.transfers == (last,)


async def test_transfer_logs_without_filter_or_with_empty_filter(
    devchain: DevChain, chain_client: ChainClient
) -> None:
    dave = Account.create().address
    await transact(
        chain_client, devchain.accounts[0].address, encode_call("mint(address,uint256)", dave, 7)
    )
    head = await chain_client.block_number()
    everything = await chain_client.get_transfer_logs(head, head)
    assert [(log.to_address, log.value) for log in everything] == [(dave, 7)]
    assert await chain_client.get_transfer_logs(head, head, to_addresses=[]) == []
    assert await chain_client.get_transfer_logs(head, head - 1) == []


async def test_unknown_transaction_has_no_receipt(chain_client: ChainClient) -> None:
    assert await chain_client.get_receipt("0x" + "ab" * 32) is None


async def test_signed_raw_transaction_is_sent_and_mined(
    devchain: DevChain, chain_client: ChainClient
) -> None:
    # Given a fresh, funded sender with no transactions yet
    sender = Account.create()
    await chain_client.rpc("anvil_setBalance", [sender.address, hex(10**18)])
    assert await chain_client.get_nonce(sender.address) == 0
    assert await chain_client.get_nonce(sender.address, pending=False) == 0
    fees = await chain_client.estimate_fees()
    assert fees.max_fee == 2 * fees.base_fee + fees.max_priority_fee
    data = encode_call("mint(address,uint256)", sender.address, 42)
    gas = await chain_client.estimate_gas(
        sender=sender.address, to=chain_client.token_address, data=data
    )
    tx = {
        "type": 2,
        "chainId": devchain.chain_id,
        "nonce": 0,
        "to": chain_client.token_address,
        "data": data,
        "value": 0,
        "gas": gas,
        "maxFeePerGas": fees.max_fee,
        "maxPriorityFeePerGas": fees.max_priority_fee,
    }
    raw = Account.sign_transaction(tx, sender.key).raw_transaction
    # When it is broadcast
    tx_hash = await chain_client.send_raw_transaction(raw)
    # Then it is mined, the nonce advanced, and a rebroadcast is rejected with a clear kind
    receipt = await wait_for_receipt(chain_client, tx_hash)
    assert receipt.status == 1
    assert receipt.from_address == sender.address
    assert receipt.effective_gas_price > 0
    assert await chain_client.get_nonce(sender.address, pending=False) == 1
    assert await chain_client.balance_of(sender.address) == 42
    with pytest.raises(TransactionRejected) as caught:
        await chain_client.send_raw_transaction("0x" + bytes(raw).hex())
    assert caught.value.kind in ("nonce_too_low", "already_known")


async def test_underfunded_raw_transaction_is_rejected_as_insufficient_funds(
    devchain: DevChain, chain_client: ChainClient
) -> None:
    broke = Account.create()
    fees = await chain_client.estimate_fees()
    tx = {
        "type": 2,
        "chainId": devchain.chain_id,
        "nonce": 0,
        "to": broke.address,
        "value": 1,
        "gas": 21_000,
        "maxFeePerGas": fees.max_fee,
        "maxPriorityFeePerGas": fees.max_priority_fee,
    }
    raw = Account.sign_transaction(tx, broke.key).raw_transaction
    with pytest.raises(TransactionRejected) as caught:
        await chain_client.send_raw_transaction(raw)
    assert caught.value.kind == "insufficient_funds"


async def test_five_thousand_transfer_logs_are_created_and_read_back_in_seconds(
    devchain: DevChain, chain_client: ChainClient
) -> None:
    # Given a sender with enough USDC and a few receiving addresses
    started = time.monotonic()
    sender = devchain.accounts[2].address
    receivers = [Account.create().address for _ in range(5)]
    first = await chain_client.block_number() + 1
    # When 5 multiTransfer transactions emit 1,000 Transfer logs each
    for batch in range(5):
        recipients = [receivers[i % len(receivers)] for i in range(1000)]
        amounts = [batch * 1000 + i + 1 for i in range(1000)]
        data = encode_call("multiTransfer(address[],uint256[])", recipients, amounts)
        await transact(chain_client, sender, data)
    last = await chain_client.block_number()
    created = time.monotonic() - started
    # Then all 5,000 come back through the client, unique and in order, within seconds
    logs = await chain_client.get_transfer_logs(first, last, to_addresses=receivers)
    elapsed = time.monotonic() - started
    assert len(logs) == 5000
    assert len({(log.tx_hash, log.log_index) for log in logs}) == 5000
    assert sorted(log.value for log in logs) == list(range(1, 5001))
    assert created < 30, f"creating 5,000 logs took {created:.1f}s"
    assert elapsed < 45, f"creating and reading 5,000 logs took {elapsed:.1f}s"


async def test_many_block_headers_come_back_in_one_batch(chain_client: ChainClient) -> None:
    head = await chain_client.block_number()
    numbers = list(range(max(head - 150, 0), head + 3))  # two batches, and 2 future blocks
    headers = await chain_client.get_blocks(numbers)
    assert [h.number if h else None for h in headers] == [*numbers[:-2], None, None]
    known = [h for h in headers if h is not None]
    assert all(child.parent_hash == parent.hash for parent, child in itertools.pairwise(known))
    single = await chain_client.get_block(numbers[0])
    assert headers[0] == single


def test_a_client_can_be_used_from_another_event_loop(devchain: DevChain) -> None:
    # e.g. built during app startup, then used by a worker running its own loop
    client = devchain.client(timeout=5)
    assert asyncio.run(client.chain_id()) == 84532
    assert asyncio.run(client.chain_id()) == 84532
    asyncio.run(client.close())
