"""A tiny stand-in for an AI provider, for ``passgate demo`` and the gateway benchmark.

Plain ASGI (no framework, so it costs next to nothing per request). ``POST .../completions``
answers like a chat API and tells whether the operator's key arrived (and the agent's did
not); every other path answers ``{"ok": true}``.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

OPERATOR_KEY = "sk-demo-operator-key"
_START_TIMEOUT = 20.0
_OK = b'{"ok":true}'


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    body = _OK
    if scope["path"].endswith("/completions"):
        headers = dict(scope["headers"])
        body = json.dumps(
            {
                "object": "chat.completion",
                "choices": [{"message": {"role": "assistant", "content": "Hello from upstream."}}],
                "usage": {"prompt_tokens": 12, "completion_tokens": 30, "total_tokens": 42},
                "sawOperatorKey": headers.get(b"authorization")
                == f"Bearer {OPERATOR_KEY}".encode(),
                "sawAgentKey": b"x-api-key" in headers,
            }
        ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"x-request-id", b"upstream-req-1"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


@contextmanager
def serve_upstream(port: int) -> Iterator[str]:
    """Run the upstream on 127.0.0.1:``port`` in a thread; yield its base URL."""
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    )
    thread = threading.Thread(target=server.run, name="demo-upstream", daemon=True)
    thread.start()
    deadline = time.monotonic() + _START_TIMEOUT
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the demo upstream did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
