from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.fixtures.webhook_receiver import Receiver
from tests.webhooks_lib.fakes import LOOPBACK_CIDRS, PATIENT, ThrowawayCA
from webhooks.ssrf import SSRFPolicy
from webhooks.transport import WebhookSender


@pytest.fixture
def loopback_policy() -> SSRFPolicy:
    return SSRFPolicy.from_cidrs(LOOPBACK_CIDRS)


@pytest.fixture
async def sender(loopback_policy: SSRFPolicy) -> AsyncIterator[WebhookSender]:
    async with WebhookSender(loopback_policy, PATIENT) as client:
        yield client


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    server = await Receiver().start()
    yield server
    await server.stop()


@pytest.fixture
def throwaway_ca(tmp_path: Path) -> ThrowawayCA:
    return ThrowawayCA(tmp_path)
