"""One HTTP exchange of the feature server: the request (headers, a body read within the size limit) and the answer."""

from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

from feature_assets.serving.http_errors import HttpError

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

JSON = b"application/json"


@dataclass(frozen=True)
class Answer:
    """An HTTP answer: status, body and content type."""

    status: int
    body: bytes
    content_type: bytes = JSON


class Request:
    """One HTTP request: its headers and a body read at most once, within the size limit."""

    def __init__(self, scope: Scope, receive: Receive, max_body_bytes: int, params: Mapping[str, str]) -> None:
        self.scope, self.receive, self.max_body_bytes, self.params = scope, receive, max_body_bytes, params

    async def body(self) -> bytes:
        """Return the body, refusing with 413 one longer than the limit (by Content-Length, then as it arrives)."""
        limit = self.max_body_bytes
        for name, value in self.scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                raise HttpError(413, _too_large(int(value), limit))
        message = await self.receive()
        body = message.get("body", b"")
        if not message.get("more_body"):
            if len(body) > limit:
                raise HttpError(413, _too_large(len(body), limit))
            return body
        chunks, size = [body], len(body)
        while message.get("more_body"):
            message = await self.receive()
            if message["type"] == "http.disconnect":
                raise HttpError(400, "the client disconnected before sending the whole body")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise HttpError(413, _too_large(size, limit, "at least "))
            chunks.append(chunk)
        return b"".join(chunks)


def _too_large(size: int, limit: int, qualifier: str = "") -> str:
    return (
        f"the request body is {qualifier}{size:,} bytes, over this server's limit of {limit:,} (max_body_bytes); "
        "send fewer entity rows per request"
    )
