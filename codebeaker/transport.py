"""The WebSocket endpoint and the health check; knows JSON-RPC frames, not Docker."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from typing import Any

from loguru import logger
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from codebeaker import __version__
from codebeaker.exceptions import UnauthorizedError
from codebeaker.rpc import Services, dumps, handle_frame
from codebeaker.rpc.errors import error_for
from codebeaker.sandbox.docker import DockerBackend

__all__ = ["health", "jsonrpc_socket"]

MAX_IN_FLIGHT = 64  # per connection; past it we stop reading, and TCP pushes back
POLICY_VIOLATION = 1008


def _authorized(connection: HTTPConnection, api_key: str | None) -> bool:
    if api_key is None:
        return True
    header = connection.headers.get("authorization", "")
    offered = header[7:] if header.lower().startswith("bearer ") else ""
    offered = offered or connection.query_params.get("apiKey", "")
    return secrets.compare_digest(offered.encode(), api_key.encode())


async def jsonrpc_socket(websocket: WebSocket) -> None:
    services: Services = websocket.app.state.services
    await websocket.accept()
    if not _authorized(websocket, services.settings.api_key):
        error = error_for(UnauthorizedError("missing or wrong API key"))
        await websocket.send_text(dumps(error.to_wire()))
        await websocket.close(POLICY_VIOLATION)
        return
    await Connection(websocket, services).serve()


class Connection:
    """Reads frames and answers each in its own task, so a slow call blocks nothing else."""

    def __init__(self, websocket: WebSocket, services: Services) -> None:
        self._websocket = websocket
        self._services = services
        self._slots = asyncio.Semaphore(MAX_IN_FLIGHT)
        self._send_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()

    async def serve(self) -> None:
        try:
            while True:
                message = await self._websocket.receive()
                if message["type"] == "websocket.disconnect":
                    break
                text = message.get("text")
                if text is None:  # binary frames are tolerated as UTF-8 text
                    text = (message.get("bytes") or b"").decode("utf-8", errors="replace")
                await self._slots.acquire()
                task = asyncio.create_task(self._answer(text))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        except WebSocketDisconnect:
            pass
        # In-flight calls finish on their own (a half-run command must not be abandoned);
        # their replies are dropped.

    async def _answer(self, text: str) -> None:
        try:
            reply = await handle_frame(text, self._services, self.notify)
            if reply is not None:
                await self.send(reply)
        except Exception:  # handle_frame maps errors itself; this is the last line of defence
            logger.exception("unhandled error while answering a frame")
        finally:
            self._slots.release()

    async def notify(self, method: str, params: dict[str, Any]) -> None:
        await self.send(dumps({"jsonrpc": "2.0", "method": method, "params": params}))

    async def send(self, text: str) -> None:
        if self._websocket.client_state is not WebSocketState.CONNECTED:
            return
        async with self._send_lock:
            with contextlib.suppress(RuntimeError, WebSocketDisconnect, OSError):
                await self._websocket.send_text(text)  # fails only if the client went away


async def health(request: Request) -> JSONResponse:
    services: Services = request.app.state.services
    backend: DockerBackend = request.app.state.backend
    docker_ok = await backend.ping()
    body = {
        "status": "ok" if docker_ok else "degraded",
        "docker": "ok" if docker_ok else "unreachable",
        "sessions": len(services.sessions),
        "pool": services.sessions.pool_readiness(),
        "version": __version__,
    }
    return JSONResponse(body, status_code=200 if docker_ok else 503)
