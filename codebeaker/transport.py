"""The JSON-RPC WebSocket endpoint: reads frames, answers each in its own task."""

from __future__ import annotations

import asyncio
import contextlib

from codebeaker_client.models import RpcErrorResponse, RpcNotification, WireModel
from loguru import logger
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from codebeaker.errors import rpc_error
from codebeaker.exceptions import UnauthorizedError
from codebeaker.rpc import dumps, handle_frame
from codebeaker.rpc.watch import Watches
from codebeaker.service import SandboxService

__all__ = ["jsonrpc_socket", "refusal_frame"]

MAX_IN_FLIGHT = 64  # per connection; past it we stop reading, and TCP pushes back


def refusal_frame(exc: UnauthorizedError) -> str:
    """What a client without the right key reads before the socket closes."""
    return dumps(RpcErrorResponse(error=rpc_error(exc)).to_wire())


async def jsonrpc_socket(websocket: WebSocket) -> None:
    await websocket.accept()
    await Connection(websocket, websocket.app.state.service).serve()


class Connection:
    """Reads frames and answers each in its own task, so a slow call blocks nothing else."""

    def __init__(self, websocket: WebSocket, service: SandboxService) -> None:
        self._websocket = websocket
        self._service = service
        self._slots = asyncio.Semaphore(MAX_IN_FLIGHT)
        self._send_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self._watches = Watches(service, self.notify)

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
        await self._watches.close()
        # In-flight calls finish on their own (a half-run command must not be abandoned);
        # their replies are dropped.

    async def _answer(self, text: str) -> None:
        try:
            reply = await handle_frame(text, self._service, self.notify, self._watches)
            if reply is not None:
                await self.send(reply)
        except Exception:  # handle_frame maps errors itself; this is the last line of defence
            logger.exception("unhandled error while answering a frame")
        finally:
            self._slots.release()

    async def notify(self, method: str, params: WireModel) -> None:
        await self.send(dumps(RpcNotification(method=method, params=params).to_wire()))

    async def send(self, text: str) -> None:
        if self._websocket.client_state is not WebSocketState.CONNECTED:
            return
        async with self._send_lock:
            with contextlib.suppress(RuntimeError, WebSocketDisconnect, OSError):
                await self._websocket.send_text(text)  # fails only if the client went away
