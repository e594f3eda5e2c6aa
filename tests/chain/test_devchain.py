"""The dev chain itself: anvil from npm, funded accounts, block time, stop by pid."""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable

import pytest
from eth_account import Account

from chain.anvil_binary import DevChainError, find_anvil, free_port
from chain.devchain import ANVIL_MNEMONIC, DevChain, start_anvil

pytestmark = pytest.mark.chain


def test_anvil_comes_from_the_npm_package(devchain: DevChain) -> None:
    binary = find_anvil()
    assert binary is not None
    if not os.environ.get("PASSGATE_ANVIL"):
        assert "node_modules/@foundry-rs/anvil-" in binary.as_posix()


async def test_dev_accounts_are_anvils_funded_mnemonic_accounts(devchain: DevChain) -> None:
    Account.enable_unaudited_hdwallet_features()
    expected = Account.from_mnemonic(ANVIL_MNEMONIC, account_path="m/44'/60'/0'/0/3")
    account = devchain.accounts[3]
    assert (account.address, account.private_key) == (expected.address, "0x" + expected.key.hex())
    assert account.private_key not in repr(devchain)
    async with devchain.client() as client:
        assert await client.get_eth_balance(account.address) > 10**18
        assert await client.balance_of(account.address) > 0


async def test_extra_addresses_get_eth_and_usdc(
    devchain_factory: Callable[..., DevChain],
) -> None:
    signer = Account.create().address
    chain = devchain_factory(accounts=2, usdc_per_account=5_000_000, fund=[signer])
    async with chain.client() as client:
        assert await client.get_eth_balance(signer) == 100 * 10**18
        assert await client.balance_of(signer) == 5_000_000
        assert await client.balance_of(chain.accounts[1].address) == 5_000_000


async def test_chain_with_a_block_time_mines_on_its_own(
    devchain_factory: Callable[..., DevChain],
) -> None:
    chain = devchain_factory(block_time=0.5, accounts=1, usdc_per_account=0)
    async with chain.client() as client:
        first = await client.block_number()
        deadline = time.monotonic() + 5
        while await client.block_number() < first + 2:
            assert time.monotonic() < deadline, "no new blocks within 5 s"
            await asyncio.sleep(0.1)


def test_stop_ends_the_anvil_process(devchain_factory: Callable[..., DevChain]) -> None:
    chain = devchain_factory(accounts=1, usdc_per_account=0)
    pid = chain.pid
    chain.stop()
    assert not chain.is_running()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    chain.stop()  # idempotent


def test_run_devchain_prints_addresses_and_stops_anvil_on_sigterm() -> None:
    if find_anvil() is None and not os.environ.get("CI"):
        pytest.skip("anvil not installed; run `npm ci` in chain/node")
    port = free_port()
    script = f"from chain.devchain_run import run_devchain; run_devchain(port={port}, block_time=1)"
    process = subprocess.Popen(
        [sys.executable, "-u", "-c", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    anvil_pid: int | None = None
    try:
        # Given the devchain command is up and has printed its banner
        output = read_until(process, "Ctrl-C to stop.", within=30)
        assert f"http://127.0.0.1:{port}" in output
        assert "0x036CbD53842c5426634e7929541eC2318f3dCF7e" in output
        assert "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266" in output
        anvil_pid = int(output.split("anvil pid ", 1)[1].split()[0])
        # When it receives SIGTERM (docker compose stop)
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=15)
        # Then it exits and so does its anvil
        with pytest.raises(ProcessLookupError):
            os.kill(anvil_pid, 0)
    finally:
        # On failure: SIGTERM first so run_devchain stops its anvil; SIGKILL only as a fallback.
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
                if anvil_pid is not None:  # its parent died before it could stop it
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(anvil_pid, signal.SIGKILL)


def read_until(process: subprocess.Popen[bytes], marker: str, within: float) -> str:
    # os.read on the raw fd: a buffered readline could hold lines that select() no longer sees.
    assert process.stdout is not None
    fd = process.stdout.fileno()
    deadline = time.monotonic() + within
    output = ""
    while marker not in output:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"{marker!r} not printed within {within:g}s:\n{output}"
        ready, _, _ = select.select([fd], [], [], remaining)
        if ready:
            chunk = os.read(fd, 65536)
            assert chunk, f"process exited early:\n{output}"
            output += chunk.decode()
    return output


def test_a_taken_port_is_a_clear_error_and_leaves_the_other_node_alone(
    devchain: DevChain,
) -> None:
    with pytest.raises(DevChainError, match="in use"):
        start_anvil(port=devchain.port, accounts=1)
    assert devchain.is_running()
