"""Wires the doors to the service: JSON-RPC on a WebSocket, REST, auth, the lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from loguru import logger
from starlette.exceptions import HTTPException
from starlette.routing import Route, WebSocketRoute

from codebeaker import __version__, playground
from codebeaker.api.live import ErrorMessage
from codebeaker.api.wire import dumps
from codebeaker.audit import AUDIT
from codebeaker.auth import ApiKeyMiddleware
from codebeaker.errors import error_text
from codebeaker.exceptions import UnauthorizedError
from codebeaker.live import pending_run_socket, terminal_socket
from codebeaker.rest.openapi import install_openapi
from codebeaker.rest.problems import http_problem, problem_response
from codebeaker.rest.routes import router
from codebeaker.rest.scrape import ConnectionGauge, metrics_endpoint
from codebeaker.service import SandboxService
from codebeaker.settings import Settings, get_settings
from codebeaker.tenants import Tenants, exposure_warning
from codebeaker.transport import jsonrpc_socket, refusal_frame

__all__ = ["create_app"]

OPEN_PATHS = frozenset({"/health", "/metrics", "/openapi.json", "/", "/api/v1/languages"})
"""Reachable without the API key: a load balancer's probe, the scraper (which has a key of
its own, ``CODEBEAKER_METRICS_KEY``), the public description, and what the playground page
needs before it can ask for a key."""
OPEN_PREFIXES = ("/playground/",)
"""The playground's scripts and styles."""
JSONRPC_PATH = "/ws/jsonrpc"


def door(scope_type: str, path: str) -> str:
    """The ``door`` label of ``codebeaker_connections``."""
    if scope_type == "http":
        return "http"
    return "jsonrpc" if path == JSONRPC_PATH else "interactive"


def socket_refusal(exc: UnauthorizedError, path: str) -> str:
    """A refused socket hears its own protocol: JSON-RPC, or the interactive doors' error."""
    if path == JSONRPC_PATH:
        return refusal_frame(exc)
    return dumps(ErrorMessage(data=error_text(exc)).to_wire())


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    tenants = Tenants.configure(settings.api_key, settings.api_keys_file)
    if warning := exposure_warning(settings.host, tenants):
        logger.warning(warning)
    service = SandboxService(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.audit_log is not None:
            AUDIT.open(settings.audit_log)
        try:
            await service.start()
            try:
                yield
            finally:
                await service.close()
        finally:
            AUDIT.close()

    app = FastAPI(
        title="CodeBeaker",
        version=__version__,
        description="Runs untrusted code in hardened Docker sandboxes.",
        lifespan=lifespan,
        openapi_url="/openapi.json",
        docs_url=None,
        redoc_url=None,
        exception_handlers={HTTPException: http_problem},
        redirect_slashes=False,  # a trailing slash is a 404 problem, not a redirect
        routes=[
            *router.routes,
            Route("/metrics", metrics_endpoint(settings.metrics_key, keyed=tenants.required)),
            WebSocketRoute(JSONRPC_PATH, jsonrpc_socket),
            WebSocketRoute("/ws", terminal_socket),
            WebSocketRoute("/ws/session/{sessionId:path}", pending_run_socket),
            *playground.routes(),
        ],
    )
    app.add_middleware(
        ApiKeyMiddleware,
        tenants=tenants,
        refuse_http=problem_response,
        refuse_socket=socket_refusal,
        open_paths=OPEN_PATHS,
        open_prefixes=OPEN_PREFIXES,
    )
    app.add_middleware(ConnectionGauge, doors=door)  # outermost: refused ones count too
    install_openapi(app)
    app.state.service = service
    return app
