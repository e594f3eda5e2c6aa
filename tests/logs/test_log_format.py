"""PASSGATE_LOG_FORMAT: one JSON object per line, or text; each with the request's ids."""

from __future__ import annotations

import logging

from litestar.testing import AsyncTestClient

from app.main import create_app
from tests.factories import key_headers, register_agent
from tests.logcapture import captured, json_lines


async def test_json_lines_carry_time_level_logger_message_and_the_request_and_key_ids(
    settings_factory, capsys
):
    # Given an API logging JSON, and an agent
    app = create_app(settings_factory(log_format="json"))
    async with AsyncTestClient(app=app) as client:
        agent = await register_agent(client)
        capsys.readouterr()

        # When the agent makes a request with its own request id
        response = await client.get("/v1/api-keys/info", headers={
            **key_headers(agent["apiKey"]), "X-Request-ID": "req-json-lines-1"})
        output = captured(capsys)

    # Then every line is a JSON object, and the request's access line names the request and
    # the key, never the secret
    assert response.status_code == 200, response.text
    lines = json_lines(output)
    [line] = [entry for entry in lines if entry.get("request_id") == "req-json-lines-1"]
    assert line["logger"] == "passgate.access"
    assert line["level"] == "INFO"
    assert line["message"].startswith("GET /v1/api-keys/info 200 ")
    assert line["timestamp"].endswith("Z")
    assert line["key_id"] == response.json()["id"]
    assert agent["apiKey"] not in output


async def test_text_lines_end_with_the_request_id(settings_factory, capsys):
    # Given an API logging text (the default)
    app = create_app(settings_factory())
    async with AsyncTestClient(app=app) as client:
        capsys.readouterr()

        # When a request is made with a request id
        await client.get("/v1/health/live", headers={"X-Request-ID": "req-text-line-1"})
        output = captured(capsys)

    # Then its access line is text naming the route and the request id
    [line] = [row for row in output.splitlines() if "req-text-line-1" in row]
    assert " INFO passgate.access: GET /v1/health/live 200 " in line
    assert line.endswith("request_id=req-text-line-1")


async def test_access_lines_can_be_turned_off(settings_factory, capsys):
    # Given an API with access lines off
    app = create_app(settings_factory(access_log=False))
    async with AsyncTestClient(app=app) as client:
        capsys.readouterr()

        # When a request is made
        await client.get("/v1/health/live", headers={"X-Request-ID": "req-no-access-1"})
        output = captured(capsys)

    # Then nothing is logged for it
    assert "req-no-access-1" not in output


def test_uvicorn_writes_no_access_lines_of_its_own(settings_factory):
    # Given an app built (as uvicorn's factory does after configuring its own logging)
    logging.getLogger("uvicorn.access").addHandler(logging.NullHandler())
    create_app(settings_factory())

    # Then uvicorn's access logger reaches no handler, so uvicorn builds no line at all
    # (passgate.access logs each request, by route template)
    assert not logging.getLogger("uvicorn.access").hasHandlers()
