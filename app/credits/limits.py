"""Bounds on credit amounts, in micros (USDC base units)."""

from __future__ import annotations

# One operator adjustment or gateway price: a billion USDC, far above any real correction,
# low enough that a typo of a few extra zeros is refused as malformed.
MAX_CALL_MICROS = 10**15

# A balance never exceeds 100 billion USDC. The column is a BIGINT (2**63 - 1, about 9.2e18):
# past it PostgreSQL fails the UPDATE and SQLite turns the sum into a REAL. Keeping two orders
# of magnitude below it also leaves room for 10**15-sized steps without any SQL arithmetic
# overflowing on the way to being refused.
MAX_BALANCE_MICROS = 10**17
