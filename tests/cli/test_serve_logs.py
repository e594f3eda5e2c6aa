"""What ``passgate serve`` writes to its log never holds a secret from a request line."""

from __future__ import annotations

import httpx

from tests.factories import unique, well_formed_key
from tests.fixtures.live import api_process


async def test_the_access_log_masks_claim_codes_and_keys(settings, tmp_path):
    # given passgate serve logging every request
    with api_process(settings, tmp_path / "api.log", {"PASSGATE_LOG_LEVEL": "INFO"}) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            response = await http.post("/v1/agents/register", json={"name": unique()})
            assert response.status_code == 201, response.text
            registered = response.json()
            key = well_formed_key("ak")

            # when a claim URL is opened and a key is pasted into a query string
            claim = await http.get(registered["claimUrl"].replace(settings.public_url, ""))
            await http.get("/v1/providers", params={"key": key})

        # then both requests are logged, without the claim code or the key
        assert claim.status_code == 200, claim.text
        log = server.output()
    assert "/v1/claims/[redacted]" in log
    assert "/v1/providers?key=ak_[redacted]" in log
    assert registered["claimCode"] not in log
    assert key not in log
