"""TestUSDC on a real anvil: ERC-20 basics, EIP-712 domain and EIP-3009 authorizations."""

from __future__ import annotations

from typing import Any

import pytest
from eth_abi.abi import decode as abi_decode
from eth_account import Account
from eth_account.signers.local import LocalAccount

from chain.client import ChainClient
from chain.devchain import DevChain
from chain.errors import ExecutionReverted
from chain.networks import BASE_SEPOLIA_USDC
from chain.usdc import (
    TokenDomain,
    TransferAuthorization,
    domain_separator,
    new_authorization,
    new_nonce,
    sign_transfer_authorization,
)
from tests.fixtures.chain import encode_call, transact

pytestmark = pytest.mark.chain


async def call(
    client: ChainClient, signature: str, returns: list[str], *args: object
) -> tuple[Any, ...]:
    data = encode_call(signature, *args)
    raw = await client.rpc("eth_call", [{"to": client.token_address, "data": data}, "latest"])
    return tuple(abi_decode(returns, bytes.fromhex(raw.removeprefix("0x"))))


async def funded_payer(chain: DevChain, client: ChainClient, usdc: int) -> LocalAccount:
    payer: LocalAccount = Account.create()
    minter = chain.accounts[0].address
    await transact(client, minter, encode_call("mint(address,uint256)", payer.address, usdc))
    return payer


async def latest_timestamp(client: ChainClient) -> int:
    header = await client.get_block("latest")
    assert header is not None
    return header.timestamp


def domain(chain: DevChain) -> TokenDomain:
    return TokenDomain("USDC", "2", chain.chain_id, chain.token_address)


def vrs_calldata(auth: TransferAuthorization, v: int, r: str, s: str) -> str:
    return encode_call(
        "transferWithAuthorization(address,address,uint256,uint256,uint256,bytes32,uint8,bytes32,bytes32)",
        auth.from_address,
        auth.to_address,
        auth.value,
        auth.valid_after,
        auth.valid_before,
        bytes.fromhex(auth.nonce[2:]),
        v,
        bytes.fromhex(r[2:]),
        bytes.fromhex(s[2:]),
    )


def bytes_calldata(auth: TransferAuthorization, signature: str) -> str:
    return encode_call(
        "transferWithAuthorization(address,address,uint256,uint256,uint256,bytes32,bytes)",
        auth.from_address,
        auth.to_address,
        auth.value,
        auth.valid_after,
        auth.valid_before,
        bytes.fromhex(auth.nonce[2:]),
        bytes.fromhex(signature[2:]),
    )


async def test_token_sits_at_the_canonical_base_sepolia_usdc_address(
    devchain: DevChain, chain_client: ChainClient
) -> None:
    assert devchain.token_address == BASE_SEPOLIA_USDC
    code = await chain_client.rpc("eth_getCode", [BASE_SEPOLIA_USDC, "latest"])
    assert len(code) > 1000


async def test_token_reports_usdc_metadata_and_eip712_domain(
    devchain: DevChain, chain_client: ChainClient
) -> None:
    assert await call(chain_client, "name()", ["string"]) == ("USDC",)
    assert await call(chain_client, "version()", ["string"]) == ("2",)
    assert await call(chain_client, "symbol()", ["string"]) == ("USDC",)
    assert await call(chain_client, "decimals()", ["uint8"]) == (6,)
    fields = await call(
        chain_client,
        "eip712Domain()",
        ["bytes1", "string", "string", "uint256", "address", "bytes32", "uint256[]"],
    )
    assert fields[1:5] == ("USDC", "2", 84532, BASE_SEPOLIA_USDC.lower())


async def test_domain_separator_matches_the_one_eth_account_computes(
    devchain: DevChain, chain_client: ChainClient
) -> None:
    (on_chain,) = await call(chain_client, "DOMAIN_SEPARATOR()", ["bytes32"])
    assert on_chain == domain_separator(domain(devchain))


async def test_mint_and_transfer_move_balances(
    devchain: DevChain, chain_client: ChainClient
) -> None:
    # Given a payer holding 10 USDC
    payer = await funded_payer(devchain, chain_client, 10_000_000)
    recipient = Account.create().address
    await chain_client.rpc("anvil_setBalance", [payer.address, hex(10**18)])
    await chain_client.rpc("anvil_impersonateAccount", [payer.address])
    # When it transfers 4 USDC
    await transact(
        chain_client, payer.address, encode_call("transfer(address,uint256)", recipient, 4_000_000)
    )
    # Then both balances reflect it
    assert await chain_client.balance_of(payer.address) == 6_000_000
    assert await chain_client.balance_of(recipient) == 4_000_000


async def test_transfer_beyond_balance_reverts_with_reason(
    devchain: DevChain, chain_client: ChainClient
) -> None:
    sender = devchain.accounts[5].address
    too_much = await chain_client.balance_of(sender) + 1
    with pytest.raises(ExecutionReverted) as caught:
        await transact(
            chain_client, sender, encode_call("transfer(address,uint256)", sender, too_much)
        )
    assert caught.value.reason == "ERC20: transfer amount exceeds balance"


@pytest.mark.parametrize("overload", ["vrs", "bytes"])
async def test_transfer_with_authorization_moves_funds_and_uses_the_nonce(
    devchain: DevChain, chain_client: ChainClient, overload: str
) -> None:
    # Given a payer with 5 USDC and a signed authorization for 2 USDC
    payer = await funded_payer(devchain, chain_client, 5_000_000)
    payee = Account.create().address
    now = await latest_timestamp(chain_client)
    auth = new_authorization(payer.address, payee, 2_000_000, now=now)
    signed = sign_transfer_authorization(payer.key, auth, domain(devchain))
    assert not await chain_client.authorization_state(payer.address, auth.nonce)
    data = (
        vrs_calldata(auth, signed.v, signed.r, signed.s)
        if overload == "vrs"
        else bytes_calldata(auth, signed.signature)
    )
    # When a third party (the settlement signer) submits it
    tx_hash = await transact(chain_client, devchain.accounts[1].address, data)
    # Then the funds moved, the nonce is used and AuthorizationUsed + Transfer were emitted
    assert await chain_client.balance_of(payee) == 2_000_000
    assert await chain_client.balance_of(payer.address) == 3_000_000
    assert await chain_client.authorization_state(payer.address, auth.nonce)
    receipt = await chain_client.get_receipt(tx_hash)
    assert receipt is not None
    assert receipt.status == 1
    assert [(t.from_address, t.to_address, t.value) for t in receipt.transfers] == [
        (payer.address, payee, 2_000_000)
    ]
    raw = await chain_client.rpc("eth_getTransactionReceipt", [tx_hash])
    topics = [log["topics"][0] for log in raw["logs"]]
    authorization_used = "0x98de503528ee59b575ef0c0a2576a82497bfc029a5685b209e9ec333479b10a5"
    assert authorization_used in topics


async def test_reusing_an_authorization_nonce_reverts(
    devchain: DevChain, chain_client: ChainClient
) -> None:
    # Given an authorization that has been used once
    payer = await funded_payer(devchain, chain_client, 5_000_000)
    now = await latest_timestamp(chain_client)
    auth = new_authorization(payer.address, Account.create().address, 1_000_000, now=now)
    signed = sign_transfer_authorization(payer.key, auth, domain(devchain))
    submitter = devchain.accounts[1].address
    await transact(chain_client, submitter, bytes_calldata(auth, signed.signature))
    # When it is submitted again (either overload)
    # Then it reverts as used, and simulation says so without a transaction
    with pytest.raises(ExecutionReverted) as caught:
        await transact(chain_client, submitter, vrs_calldata(auth, signed.v, signed.r, signed.s))
    assert caught.value.reason == "authorization is used or canceled"
    simulated = await chain_client.simulate_transfer_with_authorization(auth, signed.signature)
    assert not simulated.ok
    assert simulated.reason == "authorization is used or canceled"
    assert await chain_client.balance_of(payer.address) == 4_000_000


@pytest.mark.parametrize(
    ("window", "reason"),
    [
        ((+300, +900), "authorization is not yet valid"),
        ((-900, -300), "authorization is expired"),
    ],
)
async def test_authorization_outside_its_window_reverts(
    devchain: DevChain,
    chain_client: ChainClient,
    window: tuple[int, int],
    reason: str,
) -> None:
    payer = await funded_payer(devchain, chain_client, 5_000_000)
    now = await latest_timestamp(chain_client)
    auth = TransferAuthorization(
        from_address=payer.address,
        to_address=Account.create().address,
        value=1_000_000,
        valid_after=now + window[0],
        valid_before=now + window[1],
        nonce=new_nonce(),
    )
    signed = sign_transfer_authorization(payer.key, auth, domain(devchain))
    simulated = await chain_client.simulate_transfer_with_authorization(auth, signed.signature)
    assert (simulated.ok, simulated.reason) == (False, reason)
    with pytest.raises(ExecutionReverted) as caught:
        await transact(
            chain_client, devchain.accounts[1].address, bytes_calldata(auth, signed.signature)
        )
    assert caught.value.reason == reason
    assert not await chain_client.authorization_state(payer.address, auth.nonce)


async def test_authorization_signed_by_someone_else_is_an_invalid_signature(
    devchain: DevChain, chain_client: ChainClient
) -> None:
    payer = await funded_payer(devchain, chain_client, 5_000_000)
    now = await latest_timestamp(chain_client)
    auth = new_authorization(payer.address, Account.create().address, 1_000_000, now=now)
    forged = sign_transfer_authorization(Account.create().key, auth, domain(devchain))
    simulated = await chain_client.simulate_transfer_with_authorization(auth, forged.signature)
    assert (simulated.ok, simulated.reason) == (False, "invalid signature")


async def test_authorization_for_another_chain_id_is_an_invalid_signature(
    devchain: DevChain, chain_client: ChainClient
) -> None:
    # A signature over Base mainnet's domain must not be replayable on this chain.
    payer = await funded_payer(devchain, chain_client, 5_000_000)
    now = await latest_timestamp(chain_client)
    auth = new_authorization(payer.address, Account.create().address, 1_000_000, now=now)
    wrong = TokenDomain("USDC", "2", 8453, devchain.token_address)
    signed = sign_transfer_authorization(payer.key, auth, wrong)
    simulated = await chain_client.simulate_transfer_with_authorization(auth, signed.signature)
    assert (simulated.ok, simulated.reason) == (False, "invalid signature")


async def test_valid_authorization_simulates_ok_without_changing_state(
    devchain: DevChain, chain_client: ChainClient
) -> None:
    payer = await funded_payer(devchain, chain_client, 5_000_000)
    now = await latest_timestamp(chain_client)
    auth = new_authorization(payer.address, Account.create().address, 5_000_000, now=now)
    signed = sign_transfer_authorization(payer.key, auth, domain(devchain))
    simulated = await chain_client.simulate_transfer_with_authorization(auth, signed.signature)
    assert simulated.ok
    assert not await chain_client.authorization_state(payer.address, auth.nonce)
    assert await chain_client.balance_of(payer.address) == 5_000_000


async def test_authorization_above_the_balance_simulates_as_insufficient(
    devchain: DevChain, chain_client: ChainClient
) -> None:
    payer = await funded_payer(devchain, chain_client, 1_000_000)
    now = await latest_timestamp(chain_client)
    auth = new_authorization(payer.address, Account.create().address, 1_000_001, now=now)
    signed = sign_transfer_authorization(payer.key, auth, domain(devchain))
    simulated = await chain_client.simulate_transfer_with_authorization(auth, signed.signature)
    assert (simulated.ok, simulated.reason) == (False, "ERC20: transfer amount exceeds balance")
