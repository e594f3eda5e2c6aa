"""Opaque, prefixed ids that sort by creation time (ULID)."""

from __future__ import annotations

from ulid import ULID


def new_id(prefix: str) -> str:
    """``agt_01J...``: the ULID's timestamp prefix makes ids sortable by creation time."""
    return f"{prefix}_{ULID()}"
