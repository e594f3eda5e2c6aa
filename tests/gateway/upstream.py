"""A small upstream for gateway tests: plain ASGI, served by uvicorn on 127.0.0.1.

Paths (anything after them is ignored unless said otherwise):

- ``/echo...``        200 JSON of what arrived: method, path, query, headers, body
- ``/status/<code>``  that status with a JSON body (``?retry_after=s`` adds Retry-After)
- ``/slow?seconds=s`` waits, then 200 JSON
- ``/sse?events=n&interval=s`` a server-sent event stream, one event every ``interval``;
  a caller that hangs up ends it, counted under ``/sse#left``
- ``/large?bytes=n``  n bytes of body, streamed in 64 KiB pieces
- ``/short``         a 200 that promises 100 bytes and breaks off after 10
- ``/leaky``          200 with headers the gateway must not relay
- ``/forged``         200 with passgate's own payment and gateway headers, made up
- ``/redirect``       302 to /echo
- ``/usage?tokens=n`` 200 JSON with ``usage.total_tokens`` n (no ``tokens``: no usage);
  ``&stream=1``: an event stream of chunks whose last event carries the usage
- ``/__hits?path=p``  how many requests this process received for ``p`` (exact path)

Every response carries ``x-request-id: up-<n>``.
"""

from __future__ import annotations

import asyncio
import gzip
import json
from collections import Counter
from typing import Any
from urllib.parse import parse_qs

Scope = dict[str, Any]

_hits: Counter[str] = Counter()
_served = 0
_CHUNK = 64 * 1024


async def _read_body(receive: Any) -> bytes:
    body = b""
    while True:
        message = await receive()
        chunk: bytes = message.get("body", b"")
        body += chunk
        if not message.get("more_body"):
            return body


async def _send(send: Any, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _json(payload: Any) -> bytes:
    return json.dumps(payload).encode()


async def _usage(send: Any, query: dict[str, list[str]], request_id: tuple[bytes, bytes],
                 accept_encoding: bytes = b"") -> None:
    """An LLM-like answer that reports its usage (OpenAI's shape), whole or streamed."""
    usage = {"usage": {"total_tokens": int(query["tokens"][0])}} if "tokens" in query else {}
    if "stream" not in query:
        answer = {"id": "cmpl-1", "choices": [{"text": "hello"}], **usage}
        headers = [(b"content-type", b"application/json"), request_id]
        body = _json(answer)
        if b"gzip" in accept_encoding:  # as real APIs do when asked
            body = gzip.compress(body)
            headers.append((b"content-encoding", b"gzip"))
        await _send(send, 200, body, headers)
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/event-stream"), request_id]})
    for word in ("hel", "lo"):
        chunk = {"id": "cmpl-1", "choices": [{"delta": {"content": word}}]}
        await send({"type": "http.response.body", "body": b"data: " + _json(chunk) + b"\n\n",
                    "more_body": True})
    last = {"id": "cmpl-1", "choices": [], **usage}
    await send({"type": "http.response.body",
                "body": b"data: " + _json(last) + b"\n\ndata: [DONE]\n\n"})


async def app(scope: Scope, receive: Any, send: Any) -> None:
    global _served
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    path: str = scope["path"]
    query = parse_qs(scope["query_string"].decode())
    body = await _read_body(receive)
    _served += 1
    _hits[path] += 1
    request_id = (b"x-request-id", f"up-{_served}".encode())
    json_type = (b"content-type", b"application/json")

    if path.startswith("/echo"):
        payload = {
            "method": scope["method"],
            "path": path,
            "rawPath": scope.get("raw_path", b"").decode("latin-1"),
            "query": scope["query_string"].decode("latin-1"),
            "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in scope["headers"]],
            "body": body.decode("latin-1"),
        }
        await _send(send, 200, _json(payload), [json_type, request_id])
    elif path.startswith("/status/"):
        status = int(path.split("/")[2])
        headers = [json_type, request_id]
        if "retry_after" in query:
            headers.append((b"retry-after", query["retry_after"][0].encode()))
        content = b"" if status in (204, 304) else _json({"status": status, "secret": "internal"})
        await _send(send, status, content, headers)
    elif path == "/slow":
        await asyncio.sleep(float(query.get("seconds", ["1"])[0]))
        await _send(send, 200, _json({"slow": True}), [json_type, request_id])
    elif path == "/sse":
        events = int(query.get("events", ["3"])[0])
        interval = float(query.get("interval", ["0.2"])[0])
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"text/event-stream"),
                    (b"cache-control", b"no-cache"),
                    request_id,
                ],
            }
        )
        # A caller that hangs up ends the stream (counted as ``/sse#left``), as a real one would.
        left = asyncio.ensure_future(receive())
        for index in range(events):
            chunk = f"data: {index}\n\n".encode()
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await asyncio.sleep(interval)
            if left.done():
                _hits["/sse#left"] += 1
                return
        left.cancel()
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    elif path == "/short":
        # Promises 100 bytes, sends 10 and ends: the connection breaks mid-body.
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"100")],
            }
        )
        await send({"type": "http.response.body", "body": b'{"a": 1234', "more_body": False})
    elif path == "/large":
        size = int(query.get("bytes", ["1048576"])[0])
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/octet-stream"),
                    (b"content-length", str(size).encode()),
                    request_id,
                ],
            }
        )
        sent = 0
        while sent < size:
            piece = min(_CHUNK, size - sent)
            await send({"type": "http.response.body", "body": b"x" * piece, "more_body": True})
            sent += piece
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    elif path == "/leaky":
        headers = [
            json_type,
            request_id,
            (b"set-cookie", b"upstream_session=abc; Path=/"),
            (b"www-authenticate", b"Bearer realm=upstream"),
            (b"x-ratelimit-limit", b"999999"),
            (b"connection", b"x-hop-custom"),
            (b"x-hop-custom", b"1"),
            (b"alt-svc", b'h3=":443"'),
            (b"x-kept", b"yes"),
            (b"x-multi", b"a"),
            (b"x-multi", b"b"),
        ]
        await _send(send, 200, _json({"leaky": True}), headers)
    elif path == "/forged":
        headers = [
            json_type,
            request_id,
            (b"payment-response", b"eyJzdWNjZXNzIjp0cnVlfQ=="),
            (b"x-payment-response", b"eyJzdWNjZXNzIjp0cnVlfQ=="),
            (b"payment-required", b"eyJ4NDAyVmVyc2lvbiI6Mn0="),
            (b"x-payment-id", b"pay_forged"),
            (b"x-payment-status", b"settled"),
            (b"x-gateway-cost-micros", b"0"),
            (b"x-gateway-balance-micros", b"999999999"),
            (b"x-gateway-usage-id", b"use_forged"),
            (b"x-gateway-refund", b"all"),
            (b"x-ratelimit-remaining-tokens", b"42"),
        ]
        await _send(send, 200, _json({"forged": True}), headers)
    elif path == "/usage":
        accept = dict(scope["headers"]).get(b"accept-encoding", b"")
        await _usage(send, query, request_id, accept)
    elif path == "/redirect":
        await _send(send, 302, b"", [(b"location", b"/echo"), request_id])
    elif path == "/__hits":
        wanted = query.get("path", [""])[0]
        await _send(send, 200, _json({"hits": _hits[wanted]}), [json_type])
    else:
        await _send(send, 404, _json({"error": "no such upstream path"}), [json_type, request_id])
