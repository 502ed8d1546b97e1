"""Request body limit (``api.max_body_bytes``) as pure ASGI middleware: a declared
``Content-Length`` over the limit is refused before reading, and a streamed (chunked)
body is read up to the limit and refused as soon as it passes it. Bodies within the
limit are handed on whole (they are at most ``max_body_bytes``)."""

from __future__ import annotations

import json

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send


async def too_large(send: Send, limit: int) -> None:
    body = json.dumps(
        {"detail": f"request body too large: the limit is {limit} bytes (api.max_body_bytes)"}
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.limit = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        length = headers.get("content-length")
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                declared = -1
            if declared < 0:
                await _bad_length(send, length)
                return
            if declared > self.limit:
                await too_large(send, self.limit)
                return
            if declared == 0:
                await self.app(scope, receive, send)
                return
        elif "transfer-encoding" not in headers:
            await self.app(scope, receive, send)  # no body
            return
        messages: list[Message] = []
        size = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if size > self.limit:
                await too_large(send, self.limit)
                return
            if not message.get("more_body", False):
                break

        async def replayed() -> Message:
            if messages:
                return messages.pop(0)
            return await receive()

        await self.app(scope, replayed, send)


async def _bad_length(send: Send, value: str) -> None:
    body = json.dumps({"detail": f"Content-Length {value!r} is not a byte count"}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 400,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
