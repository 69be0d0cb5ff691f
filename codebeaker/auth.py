"""API-key authentication, once for every door (HTTP and WebSocket alike).

The key may come as ``Authorization: Bearer KEY`` or ``X-API-Key: KEY``, and on a WebSocket
also as ``?apiKey=KEY`` (browsers cannot set headers there; HTTP clients can, and a key in
a URL ends up in access logs). It is compared in constant time. What a
refused client is told is each door's own business: HTTP gets a problem document, a
WebSocket the refusal its protocol speaks, then close code 1008.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable

from starlette.datastructures import Headers, QueryParams
from starlette.types import ASGIApp, Receive, Scope, Send

from codebeaker.exceptions import UnauthorizedError

__all__ = ["POLICY_VIOLATION", "ApiKeyMiddleware", "offered_key"]

POLICY_VIOLATION = 1008
REFUSED = UnauthorizedError("missing or wrong API key")

HttpRefusal = Callable[[UnauthorizedError], ASGIApp]
"""The response an HTTP client gets (an ASGI app, e.g. a Starlette ``Response``)."""
SocketRefusal = Callable[[UnauthorizedError, str], str]
"""The text frame a WebSocket client gets before the close, given the socket's path."""


def offered_key(scope: Scope) -> str:
    headers = Headers(scope=scope)
    authorization = headers.get("authorization", "")
    if authorization[:7].lower() == "bearer ":
        return authorization[7:]
    if "x-api-key" in headers or scope["type"] != "websocket":
        return headers.get("x-api-key", "")
    return QueryParams(scope.get("query_string", b"")).get("apiKey", "")


class ApiKeyMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        api_key: str | None,
        refuse_http: HttpRefusal,
        refuse_socket: SocketRefusal,
        open_paths: frozenset[str] = frozenset(),
        open_prefixes: tuple[str, ...] = (),
    ) -> None:
        self.app = app
        # Digests of equal length: compare_digest's time then says nothing about the key.
        self._digest = None if api_key is None else hashlib.sha256(api_key.encode()).digest()
        self._refuse_http = refuse_http
        self._refuse_socket = refuse_socket
        self._open_paths = open_paths
        self._open_prefixes = open_prefixes

    def _allowed(self, scope: Scope) -> bool:
        path: str = scope["path"]
        if self._digest is None or path in self._open_paths:
            return True
        if scope["type"] == "http" and path.startswith(self._open_prefixes):
            return True
        offered = hashlib.sha256(offered_key(scope).encode("utf-8", "surrogatepass")).digest()
        return secrets.compare_digest(offered, self._digest)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or self._allowed(scope):
            await self.app(scope, receive, send)
        elif scope["type"] == "http":
            await self._refuse_http(REFUSED)(scope, receive, send)
        else:
            await receive()  # websocket.connect
            await send({"type": "websocket.accept"})
            text = self._refuse_socket(REFUSED, scope["path"])
            await send({"type": "websocket.send", "text": text})
            await send({"type": "websocket.close", "code": POLICY_VIOLATION})
