"""The integration suite's JSON-RPC harness: the SDK's ``Connection`` plus assertions.

The wire itself (one socket, replies routed by ``id``, output routed by ``requestId``) is the
SDK's, so the suite exercises the same client users get. What is added here is bookkeeping
for tests: every frame received is kept in ``frames`` (and in ``ALL_FRAMES``) so tests can
check order and that no error leaks a traceback; ``session.output`` notifications go to
``outputs``, a queue per requestId; frames no call claimed come back from ``recv_raw``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict
from typing import Any

from codebeaker_client.connection import CLOSED, Connection

__all__ = ["ALL_FRAMES", "CLOSED", "RpcClient", "RpcError"]

ALL_FRAMES: list[str] = []
"""Every frame received by any client in this test run (checked for tracebacks)."""

DEFAULT_TIMEOUT = 90.0


class RpcError(AssertionError):
    """A call that was expected to succeed came back with a JSON-RPC error."""


class RpcClient:
    def __init__(self, url: str, headers: dict[str, str] | None, open_timeout: float) -> None:
        self.frames: list[str] = []
        self.outputs: defaultdict[Any, asyncio.Queue[tuple[float, dict[str, Any]]]]
        self.outputs = defaultdict(asyncio.Queue)
        """``session.output`` notifications by requestId: (arrival time, params)."""
        self.streamed: defaultdict[Any, list[dict[str, Any]]] = defaultdict(list)
        """``session.output`` and ``session.display`` notifications by requestId, in
        arrival order: the whole notification."""
        self.connection = Connection(
            url,
            headers=headers,
            connect_timeout=open_timeout,
            reconnect_attempts=1,
            on_frame=self._record,
            on_notification=self._notified,
        )

    @classmethod
    async def connect(
        cls,
        base_url: str,
        *,
        path: str = "/ws/jsonrpc",
        additional_headers: dict[str, str] | None = None,
        open_timeout: float = 20,
    ) -> RpcClient:
        """``base_url`` is ``ws://host:port``."""
        client = cls(base_url + path, additional_headers, open_timeout)
        await client.connection.open()
        return client

    def _record(self, text: str) -> None:
        self.frames.append(text)
        ALL_FRAMES.append(text)

    def _notified(self, method: str, params: dict[str, Any]) -> None:
        if method not in ("session.output", "session.display"):
            return
        request_id = params.get("requestId")
        self.streamed[request_id].append({"jsonrpc": "2.0", "method": method, "params": params})
        if method == "session.output":
            self.outputs[request_id].put_nowait((time.monotonic(), params))

    async def close(self) -> None:
        await self.connection.close()

    @property
    def closed(self) -> bool:
        return not self.connection.connected

    async def wait_closed(self, timeout: float = 10) -> None:
        """Wait until the server closes the connection."""
        await asyncio.wait_for(self.connection.wait_closed(), timeout)

    def next_id(self) -> int:
        return self.connection.next_id()

    async def start(
        self, method: str, params: Any = None, *, request_id: Any = None
    ) -> asyncio.Future[dict[str, Any]]:
        """Send a request and return the future of its response, without waiting for it."""
        return await self.connection.start(method, params, request_id=request_id)

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
        await self.connection.notify(method, params)

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
        await self.connection.send_frame(text)

    async def recv_raw(self, timeout: float = 30) -> Any:
        """The next frame that matched no pending call, parsed when it is JSON."""
        return await self.connection.next_unsolicited(timeout)

    async def next_output(self, request_id: Any, timeout: float = 30) -> dict[str, Any]:
        """The params of the next ``session.output`` notification for this request."""
        _, params = await asyncio.wait_for(self.outputs[request_id].get(), timeout)
        return params

    def drain_outputs(self, request_id: Any) -> list[tuple[float, dict[str, Any]]]:
        """Every ``session.output`` of this request received so far, with arrival times."""
        queue = self.outputs[request_id]
        return [queue.get_nowait() for _ in range(queue.qsize())]

    def unmatched_count(self) -> int:
        return self.connection.unsolicited_count()

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
