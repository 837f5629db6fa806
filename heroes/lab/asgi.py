"""The one in-process HTTP driver: a request straight through the ASGI app (middleware and all), no sockets.

compare serves a lesson's calls with it and the benchmarks drive the app with it, so both measure the
app itself, not an HTTP client.
"""

from __future__ import annotations

import asyncio
import json as jsonlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

KEEP = 256 * 1024  # keep this much of a body (for an outcome line); count the rest


@dataclass
class InProcessResponse:
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    body: bytearray = field(default_factory=bytearray)  # the first `keep` bytes
    body_bytes: int = 0

    def json(self) -> Any:
        try:
            return jsonlib.loads(self.body)
        except ValueError:
            return None


async def serve(
    app,
    method: str,
    path: str,
    *,
    params: dict[str, Any] | None = None,
    json: Any = None,
    keep: int = KEEP,
    on_chunk: Callable[[bytes], None] | None = None,
) -> InProcessResponse:
    """One request through `app`; the body is kept up to `keep` bytes and each chunk handed to `on_chunk`."""
    body = b"" if json is None else jsonlib.dumps(json).encode()
    headers = [(b"host", b"lab"), (b"content-length", b"%d" % len(body))]
    if json is not None:
        headers.append((b"content-type", b"application/json"))
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
        "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "",
        "query_string": urlencode(params or {}).encode(), "headers": headers,
        "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80),
    }  # fmt: skip
    sent = False
    response = InProcessResponse()

    async def receive() -> dict:
        nonlocal sent
        if sent:
            await asyncio.Event().wait()  # nothing more to read: wait as a real client would
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict) -> None:
        if message["type"] == "http.response.start":
            response.status = message["status"]
            response.headers = {k.decode().lower(): v.decode() for k, v in message.get("headers", [])}
        elif message["type"] == "http.response.body":
            chunk = message.get("body", b"")
            response.body_bytes += len(chunk)
            if len(response.body) < keep:
                response.body += chunk[: keep - len(response.body)]
            if on_chunk is not None:
                on_chunk(chunk)

    await app(scope, receive, send)
    return response
