"""Bodies built to break a decoder get a 400, and the process that received them lives on."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from app.http.json_depth import MAX_JSON_DEPTH, nesting_depth
from tests.factories import assert_error, unique
from tests.fixtures.live import api_process

JSON = {"Content-Type": "application/json"}
# ~200 KB: the body of the outage report, a hundred thousand levels of arrays.
BRACKETS = b"[" * 100_000 + b"]" * 100_000


def nested(levels: int, inner: bytes = b"1") -> bytes:
    return b'{"a":' * levels + inner + b"}" * levels


@pytest.mark.parametrize(
    "body",
    [
        BRACKETS,
        nested(100_000),
        b'{"name": "x", "description": ' + BRACKETS + b"}",
        b"[" * 100_000,  # never closed
        b"[{" * (MAX_JSON_DEPTH // 2) + b"[1",
    ],
    ids=["arrays", "objects", "inside-a-field", "unclosed", "one-level-too-deep"],
)
async def test_a_body_nested_too_deeply_is_a_validation_error(client, body):
    # when
    response = await client.post("/v1/agents/register", content=body, headers=JSON)

    # then
    error = assert_error(response, 400, "VALIDATION_ERROR")
    assert "nested" in error["error"]


async def test_a_body_nested_to_the_limit_reaches_the_usual_validation(client):
    # given a field holding exactly the deepest nesting taken
    inside = b"[" * (MAX_JSON_DEPTH - 1) + b"]" * (MAX_JSON_DEPTH - 1)
    body = b'{"name": ' + inside + b"}"

    # when
    response = await client.post("/v1/agents/register", content=body, headers=JSON)

    # then the field's type is what is wrong with it, not its depth
    error = assert_error(response, 400, "VALIDATION_ERROR")
    assert "name" in error["error"]
    assert "nested" not in error["error"]


async def test_brackets_inside_strings_are_text_not_nesting(client):
    # given a description of brackets and escaped quotes, far more than the nesting limit
    description = '\\"[{' * 450

    # when
    response = await client.post(
        "/v1/agents/register", json={"name": unique(), "description": description}
    )

    # then
    assert response.status_code == 201, response.text


@pytest.mark.parametrize(
    "body",
    [
        b'{"name": "\xff"}',
        b'{"name": "caf\xc3"}',  # a two-byte character cut short
        b'{"name": "\xc0\xaf"}',  # an overlong encoding of "/"
        b'{"name": "\xed\xa0\x80"}',  # a UTF-16 surrogate encoded as UTF-8
        b'{"na\xffme": "x"}',  # in a key
        b'{"name": "x", "description": "\xfe"}',
    ],
    ids=["invalid-byte", "truncated", "overlong", "surrogate", "in-a-key", "second-field"],
)
async def test_invalid_utf8_inside_a_json_body_is_a_validation_error(client, body):
    # when
    response = await client.post("/v1/agents/register", content=body, headers=JSON)

    # then
    error = assert_error(response, 400, "VALIDATION_ERROR")
    assert "UTF-8" in error["error"]


async def test_an_api_process_answers_a_body_of_nested_brackets_and_keeps_serving(
    settings, tmp_path
):
    # given passgate serve running as a process of its own
    with api_process(settings, tmp_path / "api.log") as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            # when an anonymous caller sends the body of nested brackets, several times over
            answers = await asyncio.gather(*(
                http.post(path, content=body, headers=JSON)
                for path in ("/v1/agents/register", "/v1/keys", "/v1/api-keys")
                for body in (BRACKETS, nested(100_000))
            ))

            # then each is a 400, and the same process still serves requests
            assert [a.status_code for a in answers] == [400] * len(answers)
            assert (await http.get("/v1/health/live")).status_code == 200
        assert server.proc.poll() is None, server.output()


async def test_a_client_that_hangs_up_mid_body_is_no_server_error(settings, tmp_path):
    # given passgate serve running as a process of its own
    with api_process(settings, tmp_path / "api.log") as server:
        host, port = server.url.removeprefix("http://").split(":")
        # when a caller announces a body and hangs up halfway through it, a few times
        for _ in range(3):
            _reader, writer = await asyncio.open_connection(host, int(port))
            writer.write(b"POST /v1/agents/register HTTP/1.1\r\nHost: x\r\n"
                         b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
                         b'{"name": "half')
            await writer.drain()
            await asyncio.sleep(0.2)
            writer.close()
            await writer.wait_closed()
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            assert (await http.get("/v1/health/live")).status_code == 200
            metrics = (await http.get("/metrics")).text

        # then each was answered as a client's mistake, no error was logged, the process serves
        register = [line for line in metrics.splitlines()
                    if line.startswith("passgate_http_requests_total")
                    and 'route="/v1/agents/register"' in line]
        assert any('status="400"' in line and line.endswith(" 3.0") for line in register), register
        assert not any('status="500"' in line for line in register), register
        output = server.output()
        assert "ERROR" not in output, output
        assert "Traceback" not in output, output
        assert server.proc.poll() is None, output


def depth_of(value: object) -> int:
    if isinstance(value, list):
        return 1 + max(map(depth_of, value), default=0)
    if isinstance(value, dict):
        return 1 + max(map(depth_of, value.values()), default=0)
    return 0


_TEXT = st.text(alphabet=st.sampled_from('[]{}"\\/ aé\u2028\U0001f600'), max_size=12)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | _TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_TEXT, inner, max_size=4),
    max_leaves=60,
)


@hypothesis_settings(max_examples=300, deadline=None)
@given(value=_JSON, copies=st.sampled_from([1, 300]), ascii_only=st.booleans())
def test_the_depth_read_from_raw_bytes_is_the_depth_of_the_document(value, copies, ascii_only):
    # given any JSON document, however its strings are escaped; many copies of it side by side
    # make it wide (past 1 KB of brackets the guard first peels innermost pairs)
    if copies > 1:
        value = [value] * copies
    document = json.dumps(value, ensure_ascii=ascii_only).encode()

    # then the guard's reading of the bytes is its true nesting
    assert nesting_depth(document) == depth_of(value)
