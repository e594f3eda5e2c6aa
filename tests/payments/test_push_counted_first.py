"""A pushed transfer the watcher counted, as nobody's, before the client named it: one transfer
pays for one thing, whichever of the payment and an operator's deposit credit comes first."""

from __future__ import annotations

import asyncio

from tests.factories import register_agent
from tests.fixtures.chainapp import USDC, ChainEnv, api_client, balance, build_env

PRICE_1D = 10 * USDC


async def _counted_push(env: ChainEnv) -> tuple[str, str]:
    """A transfer of the 1d price to payTo, already counted as unmatched by the watcher;
    (sender, tx hash)."""
    buyer = await env.funded_account()
    tx_hash = await env.send_usdc(buyer.address, env.pay_to.address, PRICE_1D)
    await env.watch()
    return buyer.address, tx_hash


async def test_an_operator_cannot_credit_as_a_deposit_a_transfer_that_bought_a_pass(
    devchain, settings_factory, admin_headers
):
    env = await build_env(devchain, settings_factory)
    async with env, api_client(env.settings) as api:
        # given a pass bought with a transfer the watcher had counted first
        _, tx_hash = await _counted_push(env)
        bought = await api.post("/v1/passes/1d",
                                headers={"X-Payment": tx_hash, "X-Payment-Chain": "local"})
        [transfer] = (await api.get("/admin/v1/transfers", params={"txHash": tx_hash},
                                    headers=admin_headers)).json()["data"]
        agent = await register_agent(api)

        # when an operator tries to credit it to an agent as a deposit
        assigned = await api.post(
            f"/admin/v1/transfers/{transfer['id']}/assign",
            json={"agentId": agent["agentId"], "reason": "looks unmatched"},
            headers=admin_headers,
        )

        # then it is refused: the transfer is the payment's
        credited = await balance(api, agent["apiKey"])

    assert bought.status_code == 201, bought.text
    assert (transfer["purpose"], transfer["unmatched"]) == ("payment", False)
    assert assigned.status_code == 409, assigned.text
    assert credited == 0


async def test_a_transfer_an_operator_credited_as_a_deposit_cannot_buy_a_pass(
    devchain, settings_factory, admin_headers
):
    env = await build_env(devchain, settings_factory)
    async with env, api_client(env.settings) as api:
        # given a counted transfer that an operator credited to an agent as a deposit
        buyer, tx_hash = await _counted_push(env)
        [transfer] = (await api.get("/admin/v1/transfers", params={"txHash": tx_hash},
                                    headers=admin_headers)).json()["data"]
        agent = await register_agent(api)
        assigned = await api.post(
            f"/admin/v1/transfers/{transfer['id']}/assign",
            json={"agentId": agent["agentId"], "reason": "sent to the wrong address"},
            headers=admin_headers,
        )

        # when its hash is then named to buy a pass
        bought = await api.post("/v1/passes/1d",
                                headers={"X-Payment": tx_hash, "X-Payment-Chain": "local"})

        # then the payment is refused and the deposit credit stands alone
        credited = await balance(api, agent["apiKey"])
        payments = await api.get("/admin/v1/payments", params={"payer": buyer},
                                 headers=admin_headers)

    assert assigned.status_code == 200, assigned.text
    assert bought.status_code == 402, bought.text
    assert bought.json()["code"] == "PAYMENT_ALREADY_USED"
    assert credited == PRICE_1D
    assert payments.json()["data"] == []


async def test_transfers_named_while_the_watcher_counts_them_all_buy_their_pass(
    devchain, settings_factory, admin_headers
):
    env = await build_env(devchain, settings_factory)
    async with env, api_client(env.settings) as api:
        # Given six mined transfers of the 1d price to payTo that nobody has named yet
        hashes = []
        for _ in range(6):
            buyer = await env.funded_account()
            hashes.append(await env.send_usdc(buyer.address, env.pay_to.address, PRICE_1D))
        await env.mine(2)

        # When their buyers name them while the watcher counts them, all at once
        bought, _ = await asyncio.gather(
            asyncio.gather(*(api.post("/v1/passes/1d", headers={
                "X-Payment": tx_hash, "X-Payment-Chain": "local"}) for tx_hash in hashes)),
            env.watch_until_idle(),
        )
        transfers = [(await api.get("/admin/v1/transfers", params={"txHash": tx_hash},
                                    headers=admin_headers)).json()["data"] for tx_hash in hashes]

    # Then every buyer got its pass, and every transfer counts as the payment it made: none
    # is left unmatched for an operator to give away again
    assert [response.status_code for response in bought] == [201] * 6, [
        response.text for response in bought]
    assert [[(t["purpose"], t["unmatched"]) for t in found] for found in transfers] == [
        [("payment", False)]] * 6


async def test_a_transfer_named_while_an_operator_assigns_it_pays_for_one_thing(
    devchain, settings_factory, admin_headers
):
    env = await build_env(devchain, settings_factory)
    async with env, api_client(env.settings) as api:
        # Given six transfers the watcher counted as nobody's
        counted = [await _counted_push(env) for _ in range(6)]
        transfers = [(await api.get("/admin/v1/transfers", params={"txHash": tx_hash},
                                    headers=admin_headers)).json()["data"][0]
                     for _, tx_hash in counted]
        agent = await register_agent(api)

        # When each is named to buy a pass while an operator credits it as a deposit, all at once
        answers = await asyncio.gather(*(
            request for (_, tx_hash), transfer in zip(counted, transfers, strict=True)
            for request in (
                api.post("/v1/passes/1d",
                         headers={"X-Payment": tx_hash, "X-Payment-Chain": "local"}),
                api.post(f"/admin/v1/transfers/{transfer['id']}/assign",
                         json={"agentId": agent["agentId"], "reason": "looks unmatched"},
                         headers=admin_headers),
            )))
        credited = await balance(api, agent["apiKey"])
        after = [(await api.get("/admin/v1/transfers", params={"txHash": tx_hash},
                                headers=admin_headers)).json()["data"][0]
                 for _, tx_hash in counted]

    # Then each transfer paid for exactly one of them, and counts as what it paid for
    outcomes = [(bought.status_code, assigned.status_code)
                for bought, assigned in zip(answers[::2], answers[1::2], strict=True)]
    assert all(o in ((201, 409), (402, 200)) for o in outcomes), [
        (a.status_code, a.text) for a in answers]
    deposits = sum(1 for o in outcomes if o == (402, 200))
    assert credited == deposits * PRICE_1D
    assert [(t["purpose"], t["unmatched"]) for t in after] == [
        ("payment", False) if o == (201, 409) else ("deposit", False) for o in outcomes]
