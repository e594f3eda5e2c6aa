"""Transaction-level advisory locks: agreements between writers that share no row to lock.

On SQLite, which has one writer at a time, the same call takes that write lock instead: the
driver runs a transaction's reads before its first write outside any transaction, so without
it a read could decide on what another writer was about to change (a test gathering real
concurrent requests against the watcher caught exactly that).
"""

from __future__ import annotations

from sqlalchemy import text

from app.db.uow import UnitOfWork

# The first half of every passgate advisory lock's key ("pg" "pt"), so they cannot collide
# with another application's locks on a shared database.
_NAMESPACE = 0x70677074
# What the second half names: the pushed transfers of one network, by chain id.
_PUSHED_TRANSFERS = "SELECT pg_advisory_xact_lock{kind}(:namespace, :key)"
# SQLite: a write that changes nothing still takes the database's write lock until the end of
# the transaction, and every read after it sees the last commit.
_SQLITE_WRITE_LOCK = "UPDATE chain_transfers SET id = id WHERE 0"


async def pushed_transfers(session: UnitOfWork, chain_id: int, *, counting: bool) -> None:
    """Until this transaction ends, order it with the others that decide what a pushed transfer
    to the pay-to address of ``chain_id`` is for.

    A payment that names a transfer and the watcher that counts it must not both decide
    without seeing each other: the payment would be settled while the transfer stays
    ``unknown``, which an operator could then give to something else, or the buyer would be
    refused; or an operator could credit as a deposit a transfer that has just bought a pass.
    The watcher counting transfers and an operator assigning one hold the lock alone
    (``counting``); requests naming transfers share it, so they never wait for each other.
    """
    if session.get_bind().dialect.name != "postgresql":
        # One writer: counts and requests alike wait for each other (SQLite has no shared lock).
        await sqlite_writer(session)
        return
    kind = "" if counting else "_shared"
    await session.execute(text(_PUSHED_TRANSFERS.format(kind=kind)),
                          {"namespace": _NAMESPACE, "key": chain_id})


async def sqlite_writer(session: UnitOfWork) -> None:
    """SQLite: take the database's write lock now, so that what this transaction reads next is
    what it decides on (``SELECT ... FOR UPDATE`` locks nothing there). PostgreSQL: nothing."""
    if session.get_bind().dialect.name == "sqlite":
        await session.execute(text(_SQLITE_WRITE_LOCK))
