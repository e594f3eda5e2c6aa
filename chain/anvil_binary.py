"""The anvil binary the dev chain runs: found in chain/node's npm packages (or
``PASSGATE_ANVIL``), installed with ``npm ci`` when missing; and a free port for it."""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import platform
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

log = logging.getLogger("passgate.devchain")

NODE_DIR = Path(__file__).resolve().parent / "node"
_NPM_PLATFORM = {"Linux": "linux", "Darwin": "darwin", "Windows": "win32"}
_NPM_ARCH = {"x86_64": "amd64", "AMD64": "amd64", "arm64": "arm64", "aarch64": "arm64"}


class DevChainError(RuntimeError):
    """anvil could not be started or prepared."""


class AnvilNotFound(DevChainError):
    """No anvil binary: run ``npm ci`` in chain/node (``make node``) or set PASSGATE_ANVIL."""


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


def require_anvil(install: bool) -> Path:
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
