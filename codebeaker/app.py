"""Wires the layers together: Docker backend → sessions → JSON-RPC → Starlette routes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from loguru import logger
from starlette.applications import Starlette
from starlette.routing import Route, WebSocketRoute

from codebeaker.exceptions import SandboxError
from codebeaker.rpc import Services
from codebeaker.runtimes import RUNTIMES
from codebeaker.sandbox.docker import DockerBackend
from codebeaker.sessions import OneShotRunner, Reaper, SandboxFactory, SessionManager
from codebeaker.settings import Settings, get_settings
from codebeaker.transport import health, jsonrpc_socket

__all__ = ["create_app"]


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or get_settings()
    backend = DockerBackend(settings.docker_url)
    sandboxes = SandboxFactory(backend, settings, RUNTIMES)
    sessions = SessionManager(sandboxes, settings)
    services = Services(
        settings=settings,
        runtimes=RUNTIMES,
        sessions=sessions,
        runner=OneShotRunner(sandboxes, settings),
    )
    reaper = Reaper(sessions, settings.cleanup_interval_seconds)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await _remove_leftovers(sandboxes, "start-up")
        sandboxes.pool.start()
        reaper.start()
        logger.info("CodeBeaker serving instance {!r}", settings.instance)
        try:
            yield
        finally:
            reaper.shutdown()
            await sandboxes.pool.close()
            await sessions.close_all()
            await _remove_leftovers(sandboxes, "shutdown")  # one-shot runs cut short, too
            await backend.close()
            logger.info("CodeBeaker stopped; no container of ours is left")

    app = Starlette(
        routes=[
            Route("/health", health, methods=["GET"]),
            WebSocketRoute("/ws/jsonrpc", jsonrpc_socket),
        ],
        lifespan=lifespan,
    )
    app.state.services = services
    app.state.backend = backend
    return app


async def _remove_leftovers(sandboxes: SandboxFactory, when: str) -> None:
    try:
        removed = await sandboxes.remove_leftovers()
    except SandboxError as exc:
        logger.warning("{} clean-up skipped: {}", when, exc)
        return
    if removed:
        logger.info("{} clean-up removed {} container(s)", when, removed)
