"""Keep the interpreter's recursion limit at Python's default in every passgate process.

``py_ecc`` (pulled in by eth-account through eth-keyfile, so by web3 and the x402 SDK) raises
the limit to 100,000 when it is imported. msgspec and the standard ``json`` module stop deeply
nested input with that limit; at 100,000 a document of nested brackets overflows the C stack
first and the process dies with SIGSEGV instead of raising. Every entry point (the app factory,
the worker, the scheduler, the CLI) calls :func:`settle_recursion_limit` once it has started.
"""

from __future__ import annotations

import contextlib
import importlib
import sys

# CPython's own default, which its C stack is sized for.
RECURSION_LIMIT = 1000


def settle_recursion_limit() -> None:
    """Import the module that raises the limit (so no later import can raise it again), then
    put the limit back."""
    with contextlib.suppress(ImportError):
        importlib.import_module("py_ecc")
    sys.setrecursionlimit(RECURSION_LIMIT)
