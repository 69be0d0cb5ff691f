"""Wires the doors to the service: JSON-RPC on a WebSocket, REST, auth, the lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.exceptions import HTTPException
from starlette.routing import WebSocketRoute

from codebeaker import __version__
from codebeaker.auth import ApiKeyMiddleware
from codebeaker.rest.openapi import install_openapi
from codebeaker.rest.problems import http_problem, problem_response
from codebeaker.rest.routes import router
from codebeaker.service import SandboxService
from codebeaker.settings import Settings, get_settings
from codebeaker.transport import jsonrpc_socket, refusal_frame

__all__ = ["create_app"]

OPEN_PATHS = frozenset({"/health", "/openapi.json"})
"""Reachable without the API key: a load balancer's probe and the public description."""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    service = SandboxService(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await service.start()
        try:
            yield
        finally:
            await service.close()

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
        routes=[*router.routes, WebSocketRoute("/ws/jsonrpc", jsonrpc_socket)],
    )
    app.add_middleware(
        ApiKeyMiddleware,
        api_key=settings.api_key,
        refuse_http=problem_response,
        refuse_socket=refusal_frame,
        open_paths=OPEN_PATHS,
    )
    install_openapi(app)
    app.state.service = service
    return app
