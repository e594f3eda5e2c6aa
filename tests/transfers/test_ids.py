"""Transfer ids made in bulk have the shape ``new_id`` gives every other row."""

from __future__ import annotations

from itertools import pairwise

from ulid import ULID

from app.transfers.storing import transfer_ids as _transfer_ids


def test_bulk_transfer_ids_are_consecutive_ulids_in_increasing_order():
    # When a backfill's worth of ids is made at once (crossing several 1,024-id runs)
    ids = _transfer_ids(3_000)

    # Then each is a valid ``trf_`` ULID, distinct, sorted, and one apart from the next
    assert all(i.startswith("trf_") and len(i) == 30 for i in ids)
    numbers = [int(ULID.from_str(i.removeprefix("trf_"))) for i in ids]
    assert ["trf_" + str(ULID.from_int(n)) for n in numbers] == ids
    assert ids == sorted(ids)
    assert all(b - a == 1 for a, b in pairwise(numbers))
