"""A small JSON-RPC 2.0 client over a real WebSocket, for the integration suite.

One reader task routes every reply to the future of its ``id``, so many calls can be in
flight on one socket. Frames that match no pending call (parse errors with ``id: null``,
batch replies, replies to raw frames) go to a queue that ``recv_raw`` reads. Every frame
ever received is kept in ``frames`` (and in ``ALL_FRAMES``) so tests can check order and
that no error leaks a traceback. ``session.output`` notifications go to ``outputs``, a
queue per requestId.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections import defaultdict
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

__all__ = ["ALL_FRAMES", "CLOSED", "RpcClient", "RpcError"]

ALL_FRAMES: list[str] = []
"""Every frame received by any client in this test run (checked for tracebacks)."""

CLOSED = object()
"""What ``recv_raw`` returns once the server closed the connection."""

DEFAULT_TIMEOUT = 90.0


class RpcError(AssertionError):
    """A call that was expected to succeed came back with a JSON-RPC error."""


class RpcClient:
    def __init__(self, websocket: ClientConnection) -> None:
        self.websocket = websocket
        self.frames: list[str] = []
        self._pending: dict[Any, asyncio.Future[dict[str, Any]]] = {}
        self._unmatched: asyncio.Queue[Any] = asyncio.Queue()
        self._ids = itertools.count(1)
        self.outputs: defaultdict[Any, asyncio.Queue[tuple[float, dict[str, Any]]]]
        self.outputs = defaultdict(asyncio.Queue)
        """``session.output`` notifications by requestId: (arrival time, params)."""
        self.streamed: defaultdict[Any, list[dict[str, Any]]] = defaultdict(list)
        """``session.output`` and ``session.display`` notifications by requestId, in
        arrival order: the whole notification."""
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def connect(cls, base_url: str, *, path: str = "/ws/jsonrpc", **kwargs: Any) -> RpcClient:
        """``base_url`` is ``ws://host:port``; extra kwargs go to ``websockets.connect``."""
        kwargs.setdefault("max_size", None)
        kwargs.setdefault("proxy", None)
        kwargs.setdefault("open_timeout", 20)
        websocket = await connect(base_url + path, **kwargs)
        return cls(websocket)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.websocket.close(), 10)
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._reader

    @property
    def closed(self) -> bool:
        return self._reader.done()

    async def wait_closed(self, timeout: float = 10) -> None:
        """Wait until the server closes the connection (the reader task ends)."""
        await asyncio.wait_for(asyncio.shield(self._reader), timeout)

    async def _read(self) -> None:
        try:
            async for message in self.websocket:
                text = message if isinstance(message, str) else message.decode()
                self.frames.append(text)
                ALL_FRAMES.append(text)
                try:
                    parsed = json.loads(text)
                except ValueError:
                    self._unmatched.put_nowait(text)
                    continue
                method = parsed.get("method") if isinstance(parsed, dict) else None
                if method in ("session.output", "session.display"):
                    params = parsed.get("params") or {}
                    self.streamed[params.get("requestId")].append(parsed)
                    if method == "session.output":
                        self.outputs[params.get("requestId")].put_nowait((time.monotonic(), params))
                    continue
                future = None
                if isinstance(parsed, dict):
                    key = parsed.get("id")
                    if isinstance(key, (str, int)) and not isinstance(key, bool):
                        future = self._pending.pop(key, None)
                if future is not None and not future.done():
                    future.set_result(parsed)
                else:
                    self._unmatched.put_nowait(parsed)
        except ConnectionClosed:
            pass
        finally:
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(ConnectionError("connection closed before the reply"))
            self._pending.clear()
            self._unmatched.put_nowait(CLOSED)

    def next_id(self) -> int:
        return next(self._ids)

    async def start(
        self, method: str, params: Any = None, *, request_id: Any = None
    ) -> asyncio.Future[dict[str, Any]]:
        """Send a request and return the future of its response, without waiting for it."""
        request_id = self.next_id() if request_id is None else request_id
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            message["params"] = params
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        await self.websocket.send(json.dumps(message))
        return future

    async def call(
        self, method: str, params: Any = None, *, timeout: float = DEFAULT_TIMEOUT
    ) -> dict[str, Any]:
        """The whole response object of one request."""
        future = await self.start(method, params)
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            summary = json.dumps(params)[:300]
            raise AssertionError(f"no reply to {method} {summary} within {timeout:g}s") from None

    async def notify(self, method: str, params: Any = None) -> None:
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            message["params"] = params
        await self.websocket.send(json.dumps(message))

    async def result(
        self, method: str, params: Any = None, *, timeout: float = DEFAULT_TIMEOUT
    ) -> Any:
        """The ``result`` of a call that must succeed."""
        response = await self.call(method, params, timeout=timeout)
        if "error" in response:
            raise RpcError(f"{method} {params!r} failed: {response['error']!r}")
        assert response.get("jsonrpc") == "2.0", response
        assert "result" in response, response
        return response["result"]

    async def error(
        self,
        method: str,
        params: Any = None,
        *,
        code: int | None = None,
        kind: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> dict[str, Any]:
        """The ``error`` object of a call that must fail (optionally with this code/kind)."""
        response = await self.call(method, params, timeout=timeout)
        assert "error" in response, f"{method} {params!r} should fail, got {response!r}"
        assert "result" not in response, response
        error: dict[str, Any] = response["error"]
        assert isinstance(error.get("code"), int), error
        assert isinstance(error.get("message"), str), error
        if code is not None:
            assert error["code"] == code, f"expected code {code}, got {error!r}"
        if kind is not None:
            assert isinstance(error.get("data"), dict), error
            assert error["data"].get("kind") == kind, f"expected kind {kind!r}, got {error!r}"
        return error

    async def send_raw(self, text: str) -> None:
        await self.websocket.send(text)

    async def recv_raw(self, timeout: float = 30) -> Any:
        """The next frame that matched no pending call, parsed when it is JSON."""
        return await asyncio.wait_for(self._unmatched.get(), timeout)

    async def next_output(self, request_id: Any, timeout: float = 30) -> dict[str, Any]:
        """The params of the next ``session.output`` notification for this request."""
        _, params = await asyncio.wait_for(self.outputs[request_id].get(), timeout)
        return params

    def drain_outputs(self, request_id: Any) -> list[tuple[float, dict[str, Any]]]:
        """Every ``session.output`` of this request received so far, with arrival times."""
        queue = self.outputs[request_id]
        return [queue.get_nowait() for _ in range(queue.qsize())]

    def unmatched_count(self) -> int:
        return self._unmatched.qsize()

    async def execute(
        self, session_id: str, command: dict[str, Any], *, timeout: float = DEFAULT_TIMEOUT
    ) -> dict[str, Any]:
        """The ``session.execute`` result envelope: ``{success, result, error, durationMs}``."""
        envelope = await self.result(
            "session.execute", {"sessionId": session_id, "command": command}, timeout=timeout
        )
        assert isinstance(envelope, dict), envelope
        assert set(envelope) == {"success", "result", "error", "durationMs"}, envelope
        assert isinstance(envelope["success"], bool), envelope
        assert isinstance(envelope["durationMs"], int), envelope
        assert envelope["durationMs"] >= 0, envelope
        if envelope["success"]:
            assert envelope["error"] is None, envelope
        else:
            assert isinstance(envelope["error"], str), envelope
            assert envelope["error"], envelope
            assert "\n" not in envelope["error"].strip(), f"error must be one line: {envelope!r}"
        return envelope

    async def shell(
        self,
        session_id: str,
        command_name: str,
        *args: str,
        timeout: float = DEFAULT_TIMEOUT,
        **fields: Any,
    ) -> dict[str, Any]:
        """An ``execute_shell`` envelope (extra ``fields`` are camelCase command fields)."""
        command = {"type": "execute_shell", "commandName": command_name, "args": list(args)}
        command.update(fields)
        return await self.execute(session_id, command, timeout=timeout)

    async def sh(self, session_id: str, script: str, **fields: Any) -> dict[str, Any]:
        """``sh -c script``."""
        return await self.shell(session_id, "sh", "-c", script, **fields)

    async def ok(self, session_id: str, command: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        """The ``result`` of a command that must succeed."""
        envelope = await self.execute(session_id, command, **kwargs)
        assert envelope["success"], f"{command!r} failed: {envelope!r}"
        result: dict[str, Any] = envelope["result"]
        return result

    async def failed(self, session_id: str, command: dict[str, Any], kind: str) -> dict[str, Any]:
        """The envelope of a command that must fail with an ``error`` of this kind."""
        envelope = await self.execute(session_id, command)
        assert envelope["success"] is False, f"{command!r} should fail: {envelope!r}"
        assert envelope["error"].startswith(f"{kind}:"), f"expected {kind!r}: {envelope!r}"
        return envelope
