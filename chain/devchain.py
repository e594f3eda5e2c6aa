"""A local Base-Sepolia-like dev chain: anvil from npm, with TestUSDC at the canonical address.

``start_devchain`` is synchronous on purpose: pytest session fixtures, the CLI and the demo all
call it, some outside any event loop; setup needs a dozen JSON-RPC calls, made with a small
blocking httpx client. Everything is bounded in time and anvil only listens on 127.0.0.1 unless
the caller asks for another host.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import platform
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, TracebackType
from typing import IO, Any, Self

import httpx
from eth_abi.abi import encode as abi_encode
from eth_account import Account
from eth_account.hdaccount import key_from_seed, seed_from_mnemonic
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from chain.client import DEFAULT_TIMEOUT_SECONDS, ChainClient
from chain.networks import BASE_SEPOLIA_CHAIN_ID, BASE_SEPOLIA_USDC
from chain.usdc import load_artifact

__all__ = [
    "ANVIL_MNEMONIC",
    "NODE_DIR",
    "AnvilNotFound",
    "DevAccount",
    "DevChain",
    "DevChainError",
    "find_anvil",
    "free_port",
    "npm_ci",
    "run_devchain",
    "start_anvil",
    "start_devchain",
]

log = logging.getLogger(__name__)

NODE_DIR = Path(__file__).resolve().parent / "node"
# anvil's built-in dev mnemonic. Its keys are public knowledge: fine to print, never for value.
ANVIL_MNEMONIC = "test test test test test test test test test test test junk"
DEFAULT_USDC_PER_ACCOUNT = 1_000_000 * 10**6  # 1M USDC in base units

_NPM_PLATFORM = {"Linux": "linux", "Darwin": "darwin", "Windows": "win32"}
_NPM_ARCH = {"x86_64": "amd64", "AMD64": "amd64", "arm64": "arm64", "aarch64": "arm64"}
_MINT_SELECTOR = keccak(text="mint(address,uint256)")[:4]


class DevChainError(RuntimeError):
    """anvil could not be started or prepared."""


class AnvilNotFound(DevChainError):
    """No anvil binary: run ``npm ci`` in chain/node (``make node``) or set PASSGATE_ANVIL."""


@dataclass(frozen=True, slots=True)
class DevAccount:
    address: str
    private_key: str  # one of anvil's public test keys, or a key the caller passed in

    def __repr__(self) -> str:
        # Keep keys out of reprs that end up in logs and assertion messages.
        return f"DevAccount(address={self.address!r})"


# ---------------------------------------------------------------------- anvil binary


def _binary_package() -> str:
    system, machine = platform.system(), platform.machine()
    os_name, arch = _NPM_PLATFORM.get(system), _NPM_ARCH.get(machine)
    if os_name is None or arch is None:
        raise AnvilNotFound(f"no @foundry-rs/anvil binary package for {system}/{machine}")
    return f"@foundry-rs/anvil-{os_name}-{arch}"


def find_anvil() -> Path | None:
    """The anvil binary: ``$PASSGATE_ANVIL`` if set, else the one ``npm ci`` put in chain/node."""
    override = os.environ.get("PASSGATE_ANVIL")
    if override:
        path = Path(override)
        return path if path.is_file() else None
    try:
        package = _binary_package()
    except AnvilNotFound:
        return None
    name = "anvil.exe" if platform.system() == "Windows" else "anvil"
    path = NODE_DIR / "node_modules" / package / "bin" / name
    return path if path.is_file() else None


def npm_ci(timeout: float = 300.0) -> None:
    """Install chain/node's locked npm packages (anvil, solc, x402 clients).

    A file lock keeps parallel test processes from running two installs into one folder.
    """
    npm = shutil.which("npm")
    if npm is None:
        raise AnvilNotFound("npm is not on PATH; install Node.js 18+ or set PASSGATE_ANVIL")
    # The lock lives outside node_modules, which npm ci deletes and recreates.
    digest = hashlib.sha256(str(NODE_DIR).encode()).hexdigest()[:16]
    lock_path = Path(tempfile.gettempdir()) / f"passgate-npm-ci-{digest}.lock"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if find_anvil() is not None:  # another process finished the install while we waited
            return
        log.info("running npm ci in %s", NODE_DIR)
        try:
            subprocess.run(  # noqa: S603  # fixed argv, no shell
                # --ignore-scripts: the anvil wrapper's postinstall would only try to download
                # a binary the platform package already carries.
                [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund"],
                cwd=NODE_DIR,
                check=True,
                timeout=timeout,
                capture_output=True,
            )
        except subprocess.TimeoutExpired as exc:
            raise AnvilNotFound(f"npm ci did not finish within {timeout:g}s") from exc
        except subprocess.CalledProcessError as exc:
            tail = exc.stderr.decode(errors="replace")[-2000:]
            raise AnvilNotFound(f"npm ci failed:\n{tail}") from exc


def _require_anvil(install: bool) -> Path:
    path = find_anvil()
    if path is None and install and not os.environ.get("PASSGATE_ANVIL"):
        npm_ci()
        path = find_anvil()
    if path is None:
        raise AnvilNotFound(
            "anvil not found: run `npm ci` in chain/node (or set PASSGATE_ANVIL to a binary)"
        )
    return path


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (anvil binds it right after)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


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
    binary = _require_anvil(install)
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
    except BaseException:
        chain.stop()
        raise
    return chain


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


# ---------------------------------------------------------------------- CLI entry point


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
