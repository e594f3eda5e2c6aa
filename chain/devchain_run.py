"""``passgate devchain``: the dev chain as a foreground process until Ctrl-C or SIGTERM."""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from types import FrameType
from typing import Any

from eth_utils.address import to_checksum_address

from chain.devchain import DEFAULT_USDC_PER_ACCOUNT, start_devchain
from chain.networks import BASE_SEPOLIA_CHAIN_ID, BASE_SEPOLIA_USDC
from chain.permit2 import PERMIT2_ADDRESS, UPTO_PROXY_ADDRESS


@contextlib.contextmanager
def _sigterm_as_keyboard_interrupt() -> Iterator[None]:
    # `docker compose stop` sends SIGTERM; treat it like Ctrl-C so anvil is stopped cleanly.
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_devchain(
    port: int = 8545,
    block_time: float = 0.0,
    *,
    host: str = "127.0.0.1",
    chain_id: int = BASE_SEPOLIA_CHAIN_ID,
    token_address: str = BASE_SEPOLIA_USDC,
    accounts: int = 10,
    usdc_per_account: int = DEFAULT_USDC_PER_ACCOUNT,
    fund: Sequence[str] = (),
    echo: Any = print,
) -> None:
    """``passgate devchain``: start the dev chain, print its addresses, run until Ctrl-C/SIGTERM."""
    with _sigterm_as_keyboard_interrupt():
        chain = start_devchain(
            port=port,
            host=host,
            block_time=block_time,
            chain_id=chain_id,
            token_address=token_address,
            accounts=accounts,
            usdc_per_account=usdc_per_account,
            fund=fund,
        )
        try:
            mining = f"every {block_time:g}s" if block_time > 0 else "on every transaction"
            echo(f"anvil pid {chain.pid} listening on {chain.rpc_url} ({host})")
            echo(f"chain id  {chain.chain_id} (CAIP-2 eip155:{chain.chain_id}), blocks {mining}")
            echo(f"USDC      {chain.token_address} (TestUSDC, EIP-712 name USDC, version 2)")
            echo(f"Permit2   {PERMIT2_ADDRESS}, x402 upto proxy {UPTO_PROXY_ADDRESS} (test "
                 "stand-in)")
            echo(f"funded    {usdc_per_account / 10**6:,.2f} USDC per account")
            echo("accounts  (anvil's public test keys; never use them on a real network)")
            for index, account in enumerate(chain.accounts):
                echo(f"  [{index}] {account.address}  {account.private_key}")
            for address in fund:
                echo(f"  [+] {to_checksum_address(address)}")
            echo("Ctrl-C to stop.")
            while chain.is_running():
                time.sleep(0.5)
            echo(f"anvil exited with {chain.process.returncode}:\n{chain.log_tail()}")
        except KeyboardInterrupt:
            echo("stopping anvil")
        finally:
            chain.stop()
