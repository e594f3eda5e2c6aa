"""The floor under the gateway's latency: a reverse proxy with nothing of passgate in it.

Plain ASGI under uvicorn, the same pooled ``httpx.AsyncClient`` hop and the same streaming of
the answer back, but no framework, no key check, no rate limit, no billing and no usage record.
What the gateway adds beyond what this adds is passgate's own cost; what this adds is the cost
of any Python gateway built on this stack, on this machine. ``gateway_overhead.py`` serves it
with ``uvicorn benchmarks._bare_proxy:app`` and ``BARE_PROXY_UPSTREAM`` set to the upstream's
base URL. ``BARE_PROXY_SHARDS=n`` spreads the hop over n pooled clients taken in turn, as
passgate's gateway does (``app/gateway/upstream.py``), for a floor with the same hop.
"""

from __future__ import annotations

import os
from typing import Any

import httpx

_clients: list[httpx.AsyncClient] = []
_turn = 0


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    global _turn
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                shards = int(os.environ.get("BARE_PROXY_SHARDS", "1"))
                _clients.extend(httpx.AsyncClient(base_url=os.environ["BARE_PROXY_UPSTREAM"],
                                                  timeout=10) for _ in range(shards))
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                for client in _clients:
                    await client.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return
    assert _clients, "served without its lifespan"
    _turn = (_turn + 1) % len(_clients)
    _client = _clients[_turn]
    body, more = b"", True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    request = _client.build_request(
        scope["method"], scope["path"], params=scope["query_string"].decode(), content=body
    )
    response = await _client.send(request, stream=True)
    try:
        headers = [(b"content-type", response.headers.get("content-type", "").encode())]
        await send({"type": "http.response.start", "status": response.status_code,
                    "headers": headers})
        async for chunk in response.aiter_raw():
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    finally:
        await response.aclose()
