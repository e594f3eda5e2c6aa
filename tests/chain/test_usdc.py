"""EIP-3009 typed data and signing, cross-checked with the x402 SDK's own EIP-712 code."""

from __future__ import annotations

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils.crypto import keccak
from x402.mechanisms.evm.eip712 import hash_domain, hash_eip3009_authorization
from x402.mechanisms.evm.types import ExactEIP3009Authorization, TypedDataDomain

from chain.networks import BASE_SEPOLIA_USDC, BASE_USDC, build_networks
from chain.usdc import (
    TokenDomain,
    domain_separator,
    encode_transfer_with_authorization,
    load_artifact,
    new_authorization,
    recover_authorization_signer,
    sign_transfer_authorization,
    transfer_authorization_typed_data,
)

SEPOLIA = TokenDomain("USDC", "2", 84532, BASE_SEPOLIA_USDC)


def test_domain_separator_matches_the_x402_sdk() -> None:
    theirs = hash_domain(TypedDataDomain("USDC", "2", 84532, BASE_SEPOLIA_USDC))
    assert domain_separator(SEPOLIA) == theirs


def test_authorization_digest_matches_the_x402_sdk() -> None:
    payer = Account.create()
    auth = new_authorization(payer.address, BASE_USDC, 1_500_000, now=1_800_000_000)
    ours = encode_typed_data(full_message=transfer_authorization_typed_data(auth, SEPOLIA))
    theirs = hash_eip3009_authorization(
        ExactEIP3009Authorization(
            from_address=auth.from_address,
            to=auth.to_address,
            value=str(auth.value),
            valid_after=str(auth.valid_after),
            valid_before=str(auth.valid_before),
            nonce=auth.nonce,
        ),
        84532,
        BASE_SEPOLIA_USDC,
        "USDC",
        "2",
    )
    assert keccak(b"\x19" + ours.version + ours.header + ours.body) == theirs


def test_signature_recovers_to_the_payer_in_both_forms() -> None:
    payer = Account.create()
    auth = new_authorization(payer.address, BASE_USDC, 10)
    signed = sign_transfer_authorization(payer.key, auth, SEPOLIA)
    assert len(bytes.fromhex(signed.signature[2:])) == 65
    assert signed.signature == signed.r + signed.s[2:] + f"{signed.v:02x}"
    assert recover_authorization_signer(auth, signed.signature, SEPOLIA) == payer.address


def test_signature_for_another_domain_recovers_to_someone_else() -> None:
    payer = Account.create()
    auth = new_authorization(payer.address, BASE_USDC, 10)
    base = TokenDomain.for_network(build_networks({"base": "https://x.example"})["base"])
    signed = sign_transfer_authorization(payer.key, auth, base)
    assert recover_authorization_signer(auth, signed.signature, SEPOLIA) != payer.address


def test_new_authorization_window_allows_clock_skew() -> None:
    auth = new_authorization(BASE_USDC, BASE_USDC, 1, valid_seconds=300, now=1_000)
    assert (auth.valid_after, auth.valid_before) == (940, 1_300)
    assert len(auth.nonce) == 66
    assert new_authorization(BASE_USDC, BASE_USDC, 1).nonce != auth.nonce


def test_calldata_targets_the_bytes_signature_overload() -> None:
    auth = new_authorization(BASE_USDC, BASE_USDC, 1)
    calldata = encode_transfer_with_authorization(auth, "0x" + "11" * 65)
    # cast sig "transferWithAuthorization(address,address,uint256,uint256,uint256,bytes32,bytes)"
    assert calldata.startswith("0xcf092995")


def test_artifact_has_both_overloads_and_runtime_code() -> None:
    artifact = load_artifact()
    overloads = [
        [i["type"] for i in entry["inputs"]]
        for entry in artifact.abi
        if entry.get("name") == "transferWithAuthorization"
    ]
    assert len(overloads) == 2
    assert ["bytes"] in [o[6:] for o in overloads]
    assert artifact.deployed_bytecode.startswith("0x6080")
