"""A settlement whose row no longer makes sense is parked for an operator after a bounded number
of attempts, instead of being retried by Dramatiq and re-driven by the sweeper forever."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update
from sqlmodel import col

from app.db.models.signer import SettlementSubmission
from app.db.types import utcnow
from app.signer import service
from tests.conftest import ADMIN_TOKEN
from tests.fixtures.chainapp import USDC, ChainEnv, api_client
from tests.fixtures.workers import running_actors
from tests.signer.test_signer import _secret, authorize, request, signer_for
from workers.chain import settle

LIMIT = 3


def _later():
    """Past the sweeper's grace: whatever the sweeper would re-drive soon."""
    return utcnow() + timedelta(minutes=5)
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


async def _corrupt_signature(env: ChainEnv, submission_id: str, signature: str) -> None:
    async with env.sessions() as session:
        await session.execute(update(SettlementSubmission)
                              .where(col(SettlementSubmission.id) == submission_id)
                              .values(signature=signature))
        await session.commit()


async def test_a_settlement_that_cannot_be_submitted_is_parked_then_settles_once_fixed(
    chain_env: ChainEnv,
):
    # given a queued settlement whose stored signature was mangled (it no longer decodes)
    signer = await signer_for(chain_env)
    payer = await chain_env.funded_account(usdc=5 * USDC)
    signed = await authorize(chain_env, payer, USDC)
    sid = await request(chain_env, signed, "pay_parked")
    await _corrupt_signature(chain_env, sid, "0xzz")
    settings = chain_env.settings.model_copy(update={
        "chain_signer_private_key": _secret(signer.account.key.hex()),
        "job_max_failures": LIMIT,
    })

    async with running_actors(settings) as run, api_client(settings) as api:
        # when the settle actor meets it more often than the limit (as re-drives would)
        for _ in range(LIMIT + 1):
            await run(settle, sid, retries=0)
        listed = await api.get("/admin/v1/attention", params={"ref": sid}, headers=ADMIN)
        async with chain_env.sessions() as session:
            due = await service.due_submissions(session, _later(), 100)

        # and an operator restores the signature and retries it
        await _corrupt_signature(chain_env, sid, signed.signature)
        [item] = listed.json()["data"]
        retried = await api.post(f"/admin/v1/attention/{item['id']}/retry", headers=ADMIN)
        async with chain_env.sessions() as session:
            due_again = await service.due_submissions(session, _later(), 100)
        await run(settle, sid, retries=0)
        await run(settle, sid, retries=0)  # the step after broadcasting: the receipt
        settled = await api.get(f"/admin/v1/settlements/{sid}", headers=ADMIN)

    # then it was parked after the limit (counted no further), with its id and the error,
    # the sweeper left it alone until the retry, and it then settled: money moved once
    assert (item["kind"], item["status"], item["attempts"]) == ("settlement", "open", LIMIT)
    assert item["actor"] == "settle"
    assert "ValueError" in item["errorType"]
    assert sid not in [d.id for d in due]
    assert retried.status_code == 200, retried.text
    assert sid in [d.id for d in due_again]
    assert settled.json()["status"] == "mined", settled.text
    assert await chain_env.client.balance_of(chain_env.pay_to.address) == USDC
