"""API-key authentication, once for every door (HTTP and WebSocket alike).

The key may come as ``Authorization: Bearer KEY`` or ``X-API-Key: KEY``, and on a WebSocket
also as ``?apiKey=KEY`` (browsers cannot set headers there; HTTP clients can, and a key in
a URL ends up in access logs). It is known by its SHA-256 digest, looked up among the
tenants' (``codebeaker.tenants``): the tenant it names goes on the ASGI scope's state
(``request.state.tenant``) and in ``CURRENT_TENANT`` for every door. An HTTP request is
also charged to the tenant's rate here; WebSocket doors charge each message themselves.
What a refused client is told is each door's own business: HTTP gets a problem document
(401, or 429 with ``Retry-After``), a WebSocket the refusal its protocol speaks, then
close code 1008.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from starlette.datastructures import Headers, QueryParams
from starlette.types import ASGIApp, Receive, Scope, Send

from codebeaker.audit import AUDIT
from codebeaker.errors import describe
from codebeaker.exceptions import CodeBeakerError, LimitExceededError, UnauthorizedError
from codebeaker.tenants import ANONYMOUS, CURRENT_TENANT, LOCAL, Tenant, Tenants

__all__ = ["POLICY_VIOLATION", "ApiKeyMiddleware", "offered_key", "tenant_of"]

POLICY_VIOLATION = 1008
REFUSED = UnauthorizedError("missing or wrong API key")

HttpRefusal = Callable[[CodeBeakerError], ASGIApp]
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


def tenant_of(scope: Scope) -> Tenant:
    """The tenant the middleware found for this request (the local one on open paths)."""
    tenant = scope.get("state", {}).get("tenant", LOCAL)
    assert isinstance(tenant, Tenant)
    return tenant


class ApiKeyMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        tenants: Tenants,
        refuse_http: HttpRefusal,
        refuse_socket: SocketRefusal,
        open_paths: frozenset[str] = frozenset(),
        open_prefixes: tuple[str, ...] = (),
    ) -> None:
        self.app = app
        self._tenants = tenants
        self._refuse_http = refuse_http
        self._refuse_socket = refuse_socket
        self._open_paths = open_paths
        self._open_prefixes = open_prefixes

    def _open(self, scope: Scope) -> bool:
        path: str = scope["path"]
        if not self._tenants.required or path in self._open_paths:
            return True
        return scope["type"] == "http" and path.startswith(self._open_prefixes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        tenant = self._tenants.resolve(offered_key(scope))
        if tenant is None and self._open(scope):
            tenant = ANONYMOUS  # an open path needs no key; it names no one's sessions
        if tenant is None:
            await self._refuse(scope, receive, send, REFUSED, None)
            return
        if scope["type"] == "http" and self._tenants.required:
            try:
                tenant.admit()
            except LimitExceededError as exc:
                await self._refuse(scope, receive, send, exc, tenant.name)
                return
        scope.setdefault("state", {})["tenant"] = tenant
        token = CURRENT_TENANT.set(tenant)
        try:
            await self.app(scope, receive, send)
        finally:
            CURRENT_TENANT.reset(token)

    async def _refuse(
        self, scope: Scope, receive: Receive, send: Send, exc: CodeBeakerError, tenant: str | None
    ) -> None:
        AUDIT.record(
            tenant=tenant,
            door=scope["type"],
            method=f"{scope.get('method', 'GET')} (refused)",
            outcome=describe(exc).data.kind,
            started=time.monotonic(),
        )
        if scope["type"] == "http":
            await self._refuse_http(exc)(scope, receive, send)
            return
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        assert isinstance(exc, UnauthorizedError)
        text = self._refuse_socket(exc, scope["path"])
        await send({"type": "websocket.send", "text": text})
        await send({"type": "websocket.close", "code": POLICY_VIOLATION})
