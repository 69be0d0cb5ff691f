"""``GET /metrics`` and the connection gauge: the HTTP side of ``codebeaker.metrics``."""

from __future__ import annotations

import hmac
from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from codebeaker.metrics import CONNECTIONS

__all__ = ["ConnectionGauge", "metrics_endpoint"]

NO_METRICS_KEY = "this server has API keys: set CODEBEAKER_METRICS_KEY to scrape it\n"


def metrics_endpoint(key: str | None, *, keyed: bool) -> Callable[[Request], Response]:
    """``GET /metrics``: behind ``Authorization: Bearer <key>`` when
    ``CODEBEAKER_METRICS_KEY`` is set (scrapers are operators: a tenant's key will not do).
    Without it, open like ``/health`` on a server without API keys; refused on a keyed one,
    where tenant names and their activity are not for anyone who reaches the port."""

    def metrics(request: Request) -> Response:
        if key is None and keyed:
            return Response(NO_METRICS_KEY, 403, media_type="text/plain")
        if key is not None:
            offered = request.headers.get("authorization", "").removeprefix("Bearer ")
            if not hmac.compare_digest(offered.encode(), key.encode()):
                return Response("metrics key required\n", 401, media_type="text/plain")
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    return metrics


class ConnectionGauge:
    """ASGI middleware: every WebSocket and HTTP request in ``CONNECTIONS`` while it lasts,
    labelled by the door its path belongs to."""

    def __init__(self, app: ASGIApp, doors: Callable[[str, str], str]) -> None:
        self.app = app
        self._doors = doors

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        gauge = CONNECTIONS.labels(door=self._doors(scope["type"], scope["path"]))
        gauge.inc()
        try:
            await self.app(scope, receive, send)
        finally:
            gauge.dec()
