"""A tiny raw-HTTP webhook receiver on 127.0.0.1 for transport tests.

One request per connection (``Connection: close``), every read bounded in time, and handler
tasks cancelled on stop, so a test can never hang on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from dataclasses import dataclass, field

_MAX_HEADER_BYTES = 64 * 1024
_READ_TIMEOUT = 5.0


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: bytes = b"ok"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]  # lower-cased names
    body: bytes
    at: float = field(default_factory=time.monotonic)  # when the request was read


class Receiver:
    """Answers each path with its :class:`Reply` (404 for unknown paths) and logs requests.

    A path may map to a list of replies, used in turn; the last one repeats.
    """

    def __init__(self, routes: dict[str, Reply | list[Reply]] | None = None) -> None:
        self.routes: dict[str, Reply | list[Reply]] = dict(routes or {})
        self.requests: list[Received] = []
        self.connections = 0
        self.sni_names: list[str | None] = []
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._tls: ssl.SSLContext | None = None
        self.port = 0

    def url(self, path: str = "/hook", host: str = "127.0.0.1") -> str:
        scheme = "https" if self._tls else "http"
        return f"{scheme}://{host}:{self.port}{path}"

    def hits(self, path: str) -> list[Received]:
        return [r for r in self.requests if r.path == path]

    async def start(self, tls: ssl.SSLContext | None = None) -> Receiver:
        self._tls = tls
        if tls is not None:

            def remember_sni(_obj: object, name: str | None, _ctx: ssl.SSLContext) -> None:
                self.sni_names.append(name)

            tls.sni_callback = remember_sni
        self._server = await asyncio.start_server(
            self._on_connect,
            "127.0.0.1",
            0,
            ssl=tls,
            ssl_handshake_timeout=_READ_TIMEOUT if tls is not None else None,
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._server is not None:
            async with asyncio.timeout(_READ_TIMEOUT):
                await self._server.wait_closed()

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        try:
            await self._serve_one(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError, TimeoutError, ssl.SSLError):
            pass
        except asyncio.CancelledError:
            # Only stop() cancels these tasks; ending quietly keeps asyncio's stream callback
            # from logging the cancellation as an error.
            pass
        finally:
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1):
                    await writer.wait_closed()

    def _reply_for(self, path: str) -> Reply:
        route = self.routes.get(path, Reply(404, b"no such route"))
        if isinstance(route, Reply):
            return route
        if len(route) > 1:
            return route.pop(0)
        return route[0]

    async def _serve_one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async with asyncio.timeout(_READ_TIMEOUT):
            head = await reader.readuntil(b"\r\n\r\n")
            if len(head) > _MAX_HEADER_BYTES:
                return
            request_line, *header_lines = head.decode("latin-1").split("\r\n")
            method, path, _version = request_line.split(" ", 2)
            headers: dict[str, str] = {}
            for line in header_lines:
                if line:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0"))
            body = await reader.readexactly(length) if length else b""
        self.requests.append(Received(method, path, headers, body))
        reply = self._reply_for(path)
        if reply.delay:
            await asyncio.sleep(reply.delay)
        lines = [f"HTTP/1.1 {reply.status} Status", f"Content-Length: {len(reply.body)}"]
        lines += [f"{k}: {v}" for k, v in reply.headers.items()]
        lines.append("Connection: close")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + reply.body)
        async with asyncio.timeout(_READ_TIMEOUT):
            await writer.drain()
