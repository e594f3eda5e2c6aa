"""A local Base-Sepolia-like dev chain: anvil from npm, with TestUSDC at the canonical address,
and Permit2 and the x402 upto proxy at theirs (``chain.permit2``) when chain/node is installed.

``start_devchain`` is synchronous on purpose: pytest session fixtures, the CLI and the demo all
call it, some outside any event loop; setup needs a dozen JSON-RPC calls, made with a small
blocking httpx client. Everything is bounded in time and anvil only listens on 127.0.0.1 unless
the caller asks for another host.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

import httpx
from eth_abi.abi import encode as abi_encode
from eth_account import Account
from eth_account.hdaccount import key_from_seed, seed_from_mnemonic
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from chain.anvil_binary import DevChainError, free_port, require_anvil
from chain.client import DEFAULT_TIMEOUT_SECONDS, ChainClient
from chain.networks import BASE_SEPOLIA_CHAIN_ID, BASE_SEPOLIA_USDC
from chain.permit2 import install_permit2, permit2_creation_code
from chain.usdc import load_artifact

__all__ = [
    "ANVIL_MNEMONIC",
    "DevAccount",
    "DevChain",
    "start_anvil",
    "start_devchain",
]

log = logging.getLogger(__name__)

# anvil's built-in dev mnemonic. Its keys are public knowledge: fine to print, never for value.
ANVIL_MNEMONIC = "test test test test test test test test test test test junk"
DEFAULT_USDC_PER_ACCOUNT = 1_000_000 * 10**6  # 1M USDC in base units

_MINT_SELECTOR = keccak(text="mint(address,uint256)")[:4]


@dataclass(frozen=True, slots=True)
class DevAccount:
    address: str
    private_key: str  # one of anvil's public test keys, or a key the caller passed in

    def __repr__(self) -> str:
        # Keep keys out of reprs that end up in logs and assertion messages.
        return f"DevAccount(address={self.address!r})"


# ---------------------------------------------------------------------- tiny sync JSON-RPC


class _Rpc:
    def __init__(self, url: str, timeout: float) -> None:
        self._client = httpx.Client(timeout=timeout)
        self._url = url
        self._id = 0

    def close(self) -> None:
        self._client.close()

    def __call__(self, method: str, *params: Any) -> Any:
        self._id += 1
        body = {"jsonrpc": "2.0", "id": self._id, "method": method, "params": list(params)}
        try:
            response = self._client.post(self._url, json=body)
            response.raise_for_status()
            payload = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise DevChainError(f"{method} failed: {type(exc).__name__}: {exc}") from exc
        if "error" in payload:
            raise DevChainError(f"{method} failed: {payload['error']}")
        return payload.get("result")


# ---------------------------------------------------------------------- the handle


@dataclass
class DevChain:
    """A running anvil. Stop it with ``stop()`` or by using the handle as a context manager."""

    rpc_url: str
    chain_id: int
    token_address: str
    accounts: tuple[DevAccount, ...]
    process: subprocess.Popen[bytes] = field(repr=False)
    block_time: float = 0.0
    log_path: Path | None = None
    _log_file: IO[bytes] | None = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def port(self) -> int:
        return int(self.rpc_url.rsplit(":", 1)[1])

    def is_running(self) -> bool:
        return self.process.poll() is None

    def client(self, *, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> ChainClient:
        """A ChainClient for this chain's token (the caller closes it)."""
        return ChainClient(self.rpc_url, token_address=self.token_address, timeout=timeout)

    def log_tail(self, size: int = 4000) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_bytes()[-size:].decode(errors="replace")

    def stop(self, timeout: float = 5.0) -> None:
        """Stop anvil by its pid: SIGTERM, then SIGKILL if it has not exited within ``timeout``."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGKILL)
                self.process.wait(timeout=timeout)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        if self.log_path is not None:
            with contextlib.suppress(FileNotFoundError):
                self.log_path.unlink()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _dev_accounts(count: int) -> tuple[DevAccount, ...]:
    seed = seed_from_mnemonic(ANVIL_MNEMONIC, passphrase="")
    accounts = []
    for index in range(count):
        key = key_from_seed(seed, f"m/44'/60'/0'/0/{index}")
        accounts.append(DevAccount(Account.from_key(key).address, "0x" + key.hex()))
    return tuple(accounts)


def start_anvil(
    *,
    port: int | None = None,
    host: str = "127.0.0.1",
    block_time: float = 0.0,
    chain_id: int = BASE_SEPOLIA_CHAIN_ID,
    accounts: int = 10,
    install: bool = True,
    startup_timeout: float = 30.0,
    extra_args: Sequence[str] = (),
) -> DevChain:
    """Start a bare anvil (no token yet) and wait until it answers JSON-RPC.

    ``block_time`` 0 means automine (a block per transaction); otherwise interval mining.
    """
    binary = require_anvil(install)
    # A port picked by free_port() can be taken by someone else before anvil binds it; only
    # then is it worth trying another one.
    attempts = 1 if port else 3
    for attempt in range(attempts):
        chain = _spawn(
            binary,
            port=port or free_port(host),
            host=host,
            block_time=block_time,
            chain_id=chain_id,
            accounts=accounts,
            extra_args=extra_args,
        )
        try:
            _wait_until_ready(chain, startup_timeout)
        except _PortInUse:
            chain.stop()
            if attempt == attempts - 1:
                raise
            continue
        except BaseException:
            chain.stop()
            raise
        return chain
    raise AssertionError("unreachable")


def _spawn(
    binary: Path,
    *,
    port: int,
    host: str,
    block_time: float,
    chain_id: int,
    accounts: int,
    extra_args: Sequence[str],
) -> DevChain:
    args = [
        str(binary),
        "--host", host,
        "--port", str(port),
        "--chain-id", str(chain_id),
        "--accounts", str(accounts),
        "--mnemonic", ANVIL_MNEMONIC,
    ]  # fmt: skip
    if block_time > 0:
        args += ["--block-time", f"{block_time:g}"]
    args += list(extra_args)

    log_fd, log_name = tempfile.mkstemp(prefix=f"anvil-{port}-", suffix=".log")
    log_file = os.fdopen(log_fd, "wb")
    process = subprocess.Popen(  # noqa: S603  # fixed argv, no shell
        args, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT
    )
    rpc_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # noqa: S104  # comparison only
    return DevChain(
        rpc_url=f"http://{rpc_host}:{port}",
        chain_id=chain_id,
        token_address="",
        accounts=_dev_accounts(accounts),
        process=process,
        block_time=block_time,
        log_path=Path(log_name),
        _log_file=log_file,
    )


class _PortInUse(DevChainError):
    pass


def _wait_until_ready(chain: DevChain, timeout: float) -> None:
    """Ready = our anvil logged that it listens (so the port is ours, not another node's on
    the same port) and answers JSON-RPC with our chain id."""
    deadline = time.monotonic() + timeout
    rpc = _Rpc(chain.rpc_url, timeout=1.0)
    try:
        while time.monotonic() < deadline:
            if not chain.is_running():
                tail = chain.log_tail()
                error = _PortInUse if "address already in use" in tail.lower() else DevChainError
                raise error(f"anvil exited with {chain.process.returncode}:\n{tail}")
            if "Listening on" not in chain.log_tail(size=1_000_000):
                time.sleep(0.05)
                continue
            try:
                answered = int(rpc("eth_chainId"), 16)
            except DevChainError:
                time.sleep(0.05)
                continue
            if answered != chain.chain_id:
                raise DevChainError(f"port {chain.port} answers chain id {answered}, not ours")
            return
        raise DevChainError(f"anvil did not answer within {timeout:g}s:\n{chain.log_tail()}")
    finally:
        rpc.close()


def start_devchain(
    *,
    port: int | None = None,
    host: str = "127.0.0.1",
    block_time: float = 0.0,
    chain_id: int = BASE_SEPOLIA_CHAIN_ID,
    token_address: str = BASE_SEPOLIA_USDC,
    accounts: int = 10,
    usdc_per_account: int = DEFAULT_USDC_PER_ACCOUNT,
    fund: Sequence[str] = (),
    eth_per_funded_address: int = 100 * 10**18,
    install: bool = True,
    startup_timeout: float = 30.0,
) -> DevChain:
    """Start anvil with TestUSDC at ``token_address`` and funded accounts.

    Every dev account gets ``usdc_per_account``; each address in ``fund`` (e.g. the settlement
    signer or a demo wallet) additionally gets ``eth_per_funded_address`` wei and the same USDC.
    """
    chain = start_anvil(
        port=port,
        host=host,
        block_time=block_time,
        chain_id=chain_id,
        accounts=accounts,
        install=install,
        startup_timeout=startup_timeout,
    )
    try:
        chain.token_address = to_checksum_address(token_address)
        _install_token(
            chain,
            holders=[account.address for account in chain.accounts],
            fund=fund,
            usdc_each=usdc_per_account,
            wei_each=eth_per_funded_address,
            timeout=startup_timeout,
        )
        _install_upto(chain, timeout=startup_timeout)
    except BaseException:
        chain.stop()
        raise
    return chain


def _install_upto(chain: DevChain, *, timeout: float) -> None:
    """Permit2 and the upto proxy, for the ``upto`` scheme; skipped (with a warning) when the
    npm package with Permit2's creation code is not installed."""
    try:
        permit2_creation_code()
    except OSError:
        log.warning("Permit2's creation code is missing (run `make setup`): no upto payments")
        return
    if not chain.accounts:
        return
    rpc = _Rpc(chain.rpc_url, timeout=5.0)
    try:
        install_permit2(rpc, chain.accounts[0].address,
                        lambda tx_hash: _wait_mined(rpc, tx_hash, timeout))
    finally:
        rpc.close()


def _wait_mined(rpc: _Rpc, tx_hash: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while (receipt := rpc("eth_getTransactionReceipt", tx_hash)) is None:
        if time.monotonic() > deadline:
            raise DevChainError(f"{tx_hash} not mined within {timeout:g}s")
        time.sleep(0.05)
    if int(receipt["status"], 16) != 1:
        raise DevChainError(f"{tx_hash} reverted")


def _install_token(
    chain: DevChain,
    *,
    holders: Sequence[str],
    fund: Sequence[str],
    usdc_each: int,
    wei_each: int,
    timeout: float,
) -> None:
    rpc = _Rpc(chain.rpc_url, timeout=5.0)
    try:
        # No constructor runs under anvil_setCode; the token keeps no constructor state.
        rpc("anvil_setCode", chain.token_address, load_artifact().deployed_bytecode)
        for address in fund:
            rpc("anvil_setBalance", to_checksum_address(address), hex(wei_each))
        if usdc_each <= 0:
            return
        minter = chain.accounts[0].address if chain.accounts else None
        if minter is None:
            return
        tx_hashes = []
        for address in [*holders, *fund]:
            data = _MINT_SELECTOR + abi_encode(
                ["address", "uint256"], [to_checksum_address(address), usdc_each]
            )
            tx = {"from": minter, "to": chain.token_address, "data": "0x" + data.hex()}
            tx_hashes.append(rpc("eth_sendTransaction", tx))
        # With interval mining the mints land in the next block(s); wait for all receipts.
        deadline = time.monotonic() + timeout
        for tx_hash in tx_hashes:
            while (receipt := rpc("eth_getTransactionReceipt", tx_hash)) is None:
                if time.monotonic() > deadline:
                    raise DevChainError(f"mint not mined within {timeout:g}s")
                time.sleep(0.05)
            if int(receipt["status"], 16) != 1:
                raise DevChainError(f"mint reverted: {tx_hash}")
    finally:
        rpc.close()
