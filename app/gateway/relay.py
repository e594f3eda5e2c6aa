"""Relaying an upstream's answer to the caller: read whole when small, else streamed.

Either way the caller gets exactly the given raw headers (the filtered upstream ones plus
passgate's), nothing invented, and the upstream connection always goes back to the pool.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
from litestar.response.base import ASGIResponse
from litestar.types import Receive, Scope, Send

from app.gateway.incoming import Headers

log = logging.getLogger("passgate.gateway")


async def relay_body(response: httpx.Response, provider: str) -> AsyncIterator[bytes]:
    """The upstream body as it arrives, chunk by chunk; the connection is always released."""
    try:
        async for chunk in response.aiter_raw():
            if chunk:
                yield chunk
    except httpx.HTTPError as exc:
        # Headers (and the charge) are already out; all that can be done is to cut the body
        # short, which the caller sees as an incomplete response.
        log.warning("gateway stream from %s broke: %s", provider, type(exc).__name__)
    finally:
        # Shielded: a caller that hung up cancels this generator, and the connection must
        # still go back to the pool (or be closed) rather than leak.
        with anyio.CancelScope(shield=True):
            await response.aclose()


class RelayedResponse(ASGIResponse):
    """The upstream's answer streamed through, with exactly the given raw headers.

    Litestar's responses add a default ``Content-Type``; a relayed answer carries the
    upstream's headers (filtered), nothing invented. The upstream response is closed once this
    response has been sent or failed, or by :meth:`aclose` if it is never sent: a body nobody
    iterates never runs ``relay_body``'s cleanup, and every such leak holds one of the pool's
    connections for good.

    A caller that hangs up mid-stream stops the relay at once (and so the upstream's work: an
    SSE stream of tokens, say). Litestar's streaming response does this with a task group per
    response, which cost a tenth of a call's CPU; here one waiting ``receive()`` cancels the
    relay's scope when it hears ``http.disconnect``.
    """

    __slots__ = ("iterator", "raw_headers", "upstream")

    def __init__(
        self, *, upstream: httpx.Response, provider: str, status_code: int, raw_headers: Headers
    ) -> None:
        super().__init__(status_code=status_code)
        self.iterator: AsyncIterator[bytes] = relay_body(upstream, provider)
        self.raw_headers = raw_headers
        self.upstream = upstream

    def encode_headers(self) -> list[tuple[bytes, bytes]]:
        return self.raw_headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            # The caller may be gone before the body starts (a failed send of the headers).
            await self.aclose()

    async def send_body(self, send: Send, receive: Receive) -> None:
        # Cancelled through anyio, not with ``Task.cancel``: the upstream response's cleanup
        # (here and in httpcore) shields itself from anyio cancellation only, and a close cut
        # short would keep its connection counted in the pool for good.
        done = False
        with anyio.CancelScope() as relay:

            def heard(message: asyncio.Future[Any]) -> None:
                if message.cancelled() or message.exception() is not None:
                    return
                if message.result().get("type") == "http.disconnect" and not done:
                    relay.cancel()

            # The whole request body was read before the call was forwarded, so all the
            # server can still say is that the caller left (or, once the answer is complete,
            # that it is).
            listening = asyncio.ensure_future(receive())
            listening.add_done_callback(heard)
            try:
                async for chunk in self.iterator:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                done = True
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            finally:
                done = True
                listening.cancel()

    async def aclose(self) -> None:
        """Release the upstream connection (idempotent); for an answer that is not sent."""
        await discard(self.upstream)


# Upstream answers that announce at most this many bytes are read whole and sent in one piece:
# most API answers are small JSON, and a streamed relay costs a task group and a send per
# chunk. Anything larger, or without a Content-Length (SSE, chunked), is streamed.
BUFFER_BYTES = 64 * 1024


def fits_buffer(response: httpx.Response) -> bool:
    length = response.headers.get("content-length", "")
    return length.isdigit() and int(length) <= BUFFER_BYTES


class AnswerTooLarge(httpx.HTTPError):
    """An answer read whole grew past its limit (handled as a broken answer: uncharged)."""


async def read_whole(response: httpx.Response, limit: int | None = None) -> bytes:
    """The raw (still content-encoded) body, at most ``limit`` bytes (AnswerTooLarge beyond);
    the connection is always released."""
    try:
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_raw():
            size += len(chunk)
            if limit is not None and size > limit:
                raise AnswerTooLarge(f"the answer is larger than {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        await discard(response)


class BufferedRelay(ASGIResponse):
    """A relayed answer read whole: the given raw headers and body, nothing invented."""

    __slots__ = ("raw_headers",)

    def __init__(
        self, *, body: bytes, status_code: int, raw_headers: Headers, is_head_response: bool
    ) -> None:
        super().__init__(body=body, status_code=status_code, is_head_response=is_head_response)
        self.raw_headers = raw_headers

    def encode_headers(self) -> list[tuple[bytes, bytes]]:
        return self.raw_headers


async def discard(response: httpx.Response) -> None:
    with anyio.CancelScope(shield=True):
        await response.aclose()
