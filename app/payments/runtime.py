"""The per-process ``Payments`` object, created with the runtime's Redis and settings."""

from __future__ import annotations

from app.payments.chain import PaymentChain
from app.payments.service import Payments
from app.payments.waiter import SettlementWaiter
from app.runtime import Runtime


def payments_of(rt: Runtime) -> Payments:
    if rt.payments is None:
        rt.payments = Payments(
            PaymentChain(rt.settings),
            SettlementWaiter(rt.redis, rt.settings.redis_prefix),
            rt.redis,
            rt.settings.redis_prefix,
        )
    payments: Payments = rt.payments
    return payments
