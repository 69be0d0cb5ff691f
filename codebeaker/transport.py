"""The JSON-RPC WebSocket endpoint: reads frames, answers each request in its own task.

What one connection can make the server hold is bounded: ``max_in_flight`` requests at
once (every batch item counts; past it the connection is not read, and TCP pushes back),
each reply at most ``max_reply_bytes``, and ``max_pending_reply_bytes`` of serialized
replies not yet sent. An error that replaces a reply over a budget repeats only the
request's id, which ``read_frame`` bounds (``MAX_ID_CHARS``), so it is always a few hundred
bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

from codebeaker_client.models import RpcErrorResponse, RpcNotification, WireModel
from loguru import logger
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from codebeaker.errors import rpc_error
from codebeaker.exceptions import LimitExceededError, UnauthorizedError
from codebeaker.rpc import dumps
from codebeaker.rpc.dispatch import answer, error_reply, join, read_frame, seal
from codebeaker.rpc.watch import Watches
from codebeaker.service import SandboxService

__all__ = ["jsonrpc_socket", "refusal_frame"]


def refusal_frame(exc: UnauthorizedError) -> str:
    """What a client without the right key reads before the socket closes."""
    return dumps(RpcErrorResponse(error=rpc_error(exc)).to_wire())


async def jsonrpc_socket(websocket: WebSocket) -> None:
    await websocket.accept()
    await Connection(websocket, websocket.app.state.service).serve()


@dataclass
class _Batch:
    """A batch's replies, collected until its last item is answered."""

    waiting: int
    replies: list[str] = field(default_factory=list)

    def add(self, reply: str | None) -> bool:
        """Add one item's reply (None: a notification); True when it was the last."""
        if reply is not None:
            self.replies.append(reply)
        self.waiting -= 1
        return self.waiting == 0


class Connection:
    """Reads frames and answers each request in its own task, so a slow call blocks
    nothing else."""

    def __init__(self, websocket: WebSocket, service: SandboxService) -> None:
        self._websocket = websocket
        self._service = service
        self._settings = service.settings
        self._slots = asyncio.Semaphore(self._settings.max_in_flight)
        self._held = 0
        """Bytes of serialized replies not sent yet (``max_pending_reply_bytes``)."""
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
                await self._read(text)
        except WebSocketDisconnect:
            pass
        await self._watches.close()
        # In-flight calls finish on their own (a half-run command must not be abandoned);
        # their replies are dropped.

    async def _read(self, text: str) -> None:
        """Start one task per request of the frame, each once a slot is free."""
        frame = read_frame(text, self._settings)
        if frame.reply is not None:
            await self._slots.acquire()
            self._spawn(self._send_reply(frame.reply))
            return
        batch = _Batch(len(frame.requests)) if frame.batch else None
        for request in frame.requests:
            await self._slots.acquire()
            self._spawn(self._answer(request, batch))

    def _spawn(self, work: Any) -> None:
        task: asyncio.Task[None] = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, request: Any, batch: _Batch | None) -> None:
        """Answer one request; the last item of a batch sends the batch's reply. Its slot
        is held until then, so replies waiting to go out are bounded by the slots too."""
        try:
            reply = await self._reply(request)
            if batch is not None:
                if not batch.add(reply):
                    return
                reply = join(batch.replies)
                held = sum(map(len, batch.replies))
            else:
                held = 0 if reply is None else len(reply)
            try:
                if reply is not None:
                    await self.send(reply)
            finally:
                self._held -= held
        finally:
            self._slots.release()

    async def _reply(self, request: Any) -> str | None:
        """One request's reply, serialized and counted as held; over the connection's
        budget it is replaced by a short ``limit_exceeded`` error. Never raises."""
        request_id = request.get("id") if isinstance(request, dict) else None
        try:
            reply = await answer(request, self._service, self.notify, self._watches)
            if reply is None:
                return None
            text = seal(reply, self._settings)
        except Exception as exc:  # answer maps errors itself; this is the last line of defence
            logger.exception("unhandled error while answering a request")
            text = error_reply(exc, request_id)
        except asyncio.CancelledError as exc:
            task = asyncio.current_task()
            if task is None or task.cancelling():
                raise  # the connection is going away: nobody to answer
            # A cancellation leaked out of the call, not aimed at us: still one answer
            # (an internal error, logged with its id by the error table).
            text = error_reply(exc, request_id)
        limit = self._settings.max_pending_reply_bytes
        if self._held + len(text) > limit:
            message = (
                f"replies waiting to be sent on this connection would pass {limit} bytes "
                "(CODEBEAKER_MAX_PENDING_REPLY_BYTES); read them, or ask for less at once"
            )
            full = LimitExceededError("pending_reply_size", message, retry_after=1.0)
            text = error_reply(full, request_id)
        self._held += len(text)  # ASCII: characters are bytes
        return text

    async def _send_reply(self, text: str) -> None:
        try:
            await self.send(text)
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
