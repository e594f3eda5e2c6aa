"""Demo steps over keys: health, registering an agent, extra keys, rate limits, revoking, the
audit log."""

from __future__ import annotations

from workers.demo.output import DEMO_PER_MINUTE, DemoFailed, DemoState, expect, mask, say, show


def step_health(s: DemoState) -> None:
    show("Health")
    body = expect(s.http.get("/v1/health"), 200)
    say(f"database {body['database']['status']}, broker {body['broker']['status']}")


def step_register(s: DemoState) -> None:
    show("An agent registers itself")
    body = expect(s.http.post("/v1/agents/register", json={"name": "demo-agent"}), 201)
    s.values["agent_key"] = body["apiKey"]
    s.values["agent_id"] = body["agentId"]
    say(f"agent {body['agentId']} got key {mask(body['apiKey'])} (shown once) and claim code")


def step_extra_key(s: DemoState) -> None:
    show("It creates a labelled personal key")
    body = expect(
        s.http.post("/v1/api-keys", json={"label": "ci-runner"},
                    headers={"X-API-Key": s.values["agent_key"]}),
        201,
    )
    s.values["extra_key"] = body["key"]
    s.values["extra_id"] = body["id"]
    say(f"key {body['id']} '{body['label']}' = {mask(body['key'])} scopes {body['scopes']}")


def step_list_keys(s: DemoState) -> None:
    show("It lists its keys (never the secrets)")
    body = expect(s.http.get("/v1/api-keys", headers={"X-API-Key": s.values["agent_key"]}), 200)
    for key in body["data"]:
        say(f"{key['id']}  {key['type']:<8} {key['hint']}  {key['label']}")


def step_rate_limit(s: DemoState) -> None:
    show(f"Rate limit: the demo plan allows {DEMO_PER_MINUTE} requests a minute per key")
    headers = {"X-API-Key": s.values["extra_key"]}
    for _ in range(DEMO_PER_MINUTE * 2):
        response = s.http.get("/v1/api-keys/info", headers=headers)
        if response.status_code == 429:
            body = expect(response, 429)
            retry = response.headers["Retry-After"]
            say(f"{body['code']}: {body['error']} (Retry-After {retry} s)")
            return
        say(f"200, X-RateLimit-Remaining {response.headers.get('X-RateLimit-Remaining')}")
    raise DemoFailed("no 429 was returned")


def step_revoke(s: DemoState) -> None:
    show("It revokes the personal key; the key stops working")
    expect(
        s.http.delete(f"/v1/api-keys/{s.values['extra_id']}",
                      headers={"X-API-Key": s.values["agent_key"]}),
        200,
    )
    body = expect(s.http.get("/v1/balance", headers={"X-API-Key": s.values["extra_key"]}), 401)
    say(f"{body['code']}: {body['error']}")


def step_audit(s: DemoState) -> None:
    show("The operator creates a platform, which claims nothing yet; the audit log shows it")
    admin = {"Authorization": f"Bearer {s.admin_token}"}
    body = expect(s.http.post("/admin/v1/platforms", json={"name": "Acme"}, headers=admin), 201)
    say(f"platform {body['platform']['id']} with master key {mask(body['masterKey'])}")
    log = expect(s.http.get("/admin/v1/audit-log", headers=admin), 200)
    for entry in log["data"][:3]:
        say(f"{entry['createdAt']} {entry['actorType']} {entry['action']} {entry['targetId']}")
