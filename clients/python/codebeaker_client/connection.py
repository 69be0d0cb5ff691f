"""One JSON-RPC 2.0 connection over a WebSocket, shared by every call, that reconnects by itself.

Requests are multiplexed: one reader task routes each reply to the future of its ``id``, and
each ``session.output``/``session.display`` notification to whoever listens for its
``requestId``. When the socket drops, every waiting call fails with ``ConnectionLost`` (the
sessions live on in the server); the next call opens a new socket, retrying with backoff.
Calls that read without changing anything are sent again on the new socket by themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, TypeGuard, TypeVar

from pydantic import BaseModel, ValidationError
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from codebeaker_client.errors import (
    CodeBeakerError,
    ConnectionLost,
    ServerError,
    Unreachable,
    for_rpc_error,
)
from codebeaker_client.models.errors import ErrorData
from codebeaker_client.models.jsonrpc import RpcRequest
from codebeaker_client.models.wire import WireModel

__all__ = ["CLOSED", "DEFAULT_URL", "Connection", "Listener", "parse_reply"]

DEFAULT_URL: Final = "ws://127.0.0.1:5000/ws/jsonrpc"
STREAMED: Final = frozenset({"session.output", "session.display"})
IDEMPOTENT: Final = frozenset({"session.list", "context.list"})
"""Calls sent again after a reconnect: reading them twice changes nothing."""
LONG: Final = frozenset({"session.execute", "session.run_code", "execution.run"})
"""Calls that may take minutes: the server stops reading a connection with 64 calls in
flight, so at most ``LONG_SLOTS`` of these are, leaving room for cancel, input and close."""
LONG_SLOTS: Final = 56
UNSOLICITED_LIMIT: Final = 1024
Result = TypeVar("Result", bound=BaseModel)
Listener = Callable[[str, dict[str, Any]], None]
"""Called with a notification's method and params."""


@dataclass
class _Call:
    method: str
    future: asyncio.Future[dict[str, Any]]
    sent: bool = False
    listener: Listener | None = None


@dataclass
class _Socket:
    websocket: ClientConnection
    reader: asyncio.Task[None] | None = None
    calls: dict[int | str, _Call] = field(default_factory=dict)
    refusal: CodeBeakerError | None = None
    """Why the server turned this socket away (a wrong key): what its calls fail with."""


class Connection:
    """The wire under ``AsyncCodeBeaker``; usable alone for raw JSON-RPC (protocol tests,
    tools). ``on_frame`` sees every text frame received, before it is routed."""

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        api_key: str | None = None,
        headers: Mapping[str, str] | None = None,
        connect_timeout: float = 20.0,
        reconnect_attempts: int = 5,
        on_frame: Callable[[str], None] | None = None,
        on_notification: Listener | None = None,
    ) -> None:
        self.url = url
        self._headers = dict(headers or {})
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._connect_timeout = connect_timeout
        self._attempts = max(1, reconnect_attempts)
        self._on_frame = on_frame
        self._on_notification = on_notification
        self._ids = itertools.count(1)
        self._socket: _Socket | None = None
        self._opening: asyncio.Lock | None = None
        self._closed = False
        self._long_slots = asyncio.Semaphore(LONG_SLOTS)
        self._prefix = secrets.token_hex(6)
        self._unsolicited: asyncio.Queue[Any] = asyncio.Queue(UNSOLICITED_LIMIT)
        self.reconnects = 0
        """How many times a dropped socket was replaced."""

    # -- the socket ----------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """``close()`` was called: the connection is not reopened."""
        return self._closed

    @property
    def connected(self) -> bool:
        socket = self._socket
        return socket is not None and socket.reader is not None and not socket.reader.done()

    async def open(self) -> None:
        """Connect now (calls connect on demand anyway)."""
        await self._current()

    async def close(self) -> None:
        """Close the socket; waiting calls fail with ``ConnectionLost``. Not reusable."""
        self._closed = True
        socket, self._socket = self._socket, None
        if socket is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(socket.websocket.close(), 5)
            if socket.reader is not None:
                socket.reader.cancel()
                with contextlib.suppress(BaseException):
                    await socket.reader
            self._fail(socket, "the client was closed")

    async def wait_closed(self) -> None:
        """Until the current socket closes (the server closed it, or it dropped)."""
        socket = self._socket
        if socket is not None and socket.reader is not None:
            await asyncio.shield(socket.reader)

    async def drop(self) -> None:
        """Close the current socket as if the network had failed (the next call reconnects)."""
        socket = self._socket
        if socket is not None:
            await socket.websocket.close()
            if socket.reader is not None:
                with contextlib.suppress(BaseException):
                    await socket.reader

    async def _current(self) -> _Socket:
        socket = self._socket
        if socket is not None and socket.reader is not None and not socket.reader.done():
            return socket
        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:
            socket = self._socket
            if socket is not None and socket.reader is not None and not socket.reader.done():
                return socket
            if self._closed:
                raise ConnectionLost("the client was closed", sent=False)
            websocket = await self._connect()
            if self.closed:  # close() ran while this connected
                await websocket.close()
                raise ConnectionLost("the client was closed", sent=False)
            if socket is not None:
                self.reconnects += 1
            socket = self._socket = _Socket(websocket)
            socket.reader = asyncio.get_running_loop().create_task(self._read(socket))
            return socket

    async def _connect(self) -> ClientConnection:
        delay, last = 0.1, ""
        for attempt in range(self._attempts):
            if attempt:
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
            try:
                return await connect(
                    self.url,
                    additional_headers=self._headers,
                    open_timeout=self._connect_timeout,
                    max_size=None,
                    proxy=None,
                )
            except InvalidURI as exc:
                raise CodeBeakerError(f"not a WebSocket URL: {self.url!r} ({exc})") from None
            except (OSError, InvalidHandshake, TimeoutError) as exc:
                last = f"{type(exc).__name__}: {exc}"
        raise Unreachable(f"cannot connect to {self.url} after {self._attempts} attempts ({last})")

    # -- receiving -----------------------------------------------------------------------

    async def _read(self, socket: _Socket) -> None:
        reason = "the server closed the connection"
        try:
            async for message in socket.websocket:
                text = message if isinstance(message, str) else message.decode(errors="replace")
                try:
                    if self._on_frame is not None:
                        self._on_frame(text)
                    self._route(socket, text)
                except Exception:  # a callback's error must not end the connection for all
                    self._put_unsolicited(text)
        except ConnectionClosed as exc:
            reason = f"the connection dropped ({exc})"
        finally:
            self._fail(socket, reason)
            self._put_unsolicited(CLOSED)
            with contextlib.suppress(Exception):
                await socket.websocket.close()

    def _route(self, socket: _Socket, text: str) -> None:
        try:
            message = json.loads(text)
        except ValueError:
            self._put_unsolicited(text)
            return
        if not isinstance(message, dict):
            self._put_unsolicited(message)
            return
        method = message.get("method")
        if isinstance(method, str) and "id" not in message:
            self._notify(socket, method, message.get("params"))
            if method not in STREAMED:
                self._put_unsolicited(message)
            return
        key = message.get("id")
        call = socket.calls.pop(key, None) if _is_id(key) else None
        if call is not None and not call.future.done():
            call.future.set_result(message)
            return
        error = message.get("error")
        if key is None and isinstance(error, dict) and _kind(error) == "unauthorized":
            socket.refusal = for_rpc_error(error)
            self._fail(socket, "unauthorized")
        self._put_unsolicited(message)

    def _notify(self, socket: _Socket, method: str, params: Any) -> None:
        """A request's output goes to its listener, anything else to ``on_notification``
        (``_route`` also queues any but output as unsolicited: ``session.event`` …)."""
        if not isinstance(params, dict):
            params = {}
        if method in STREAMED:
            key = params.get("requestId")
            call = socket.calls.get(key) if _is_id(key) else None
            if call is not None and call.listener is not None:
                try:
                    call.listener(method, params)
                except Exception as exc:  # a callback's or a bad frame's error is its call's
                    call.listener = None
                    if not call.future.done():
                        call.future.set_exception(exc)
                return
        if self._on_notification is not None:
            self._on_notification(method, params)

    def _put_unsolicited(self, message: Any) -> None:
        if self._unsolicited.full():
            self._unsolicited.get_nowait()
        self._unsolicited.put_nowait(message)

    def _fail(self, socket: _Socket, reason: str) -> None:
        calls, socket.calls = socket.calls, {}
        for call in calls.values():
            if not call.future.done():
                error = socket.refusal or ConnectionLost(reason, sent=call.sent)
                call.future.set_exception(error)

    async def next_unsolicited(self, timeout: float = 30.0) -> Any:
        """The next frame that answered no call (a parse error with ``id: null``, a batch's
        replies, an unknown id) or is a notification other than a request's output, parsed
        when it is JSON; ``CLOSED`` once the socket closed. The last 1024 are kept."""
        return await asyncio.wait_for(self._unsolicited.get(), timeout)

    def unsolicited_count(self) -> int:
        return self._unsolicited.qsize()

    # -- sending -------------------------------------------------------------------------

    def next_id(self) -> int:
        return next(self._ids)

    def unique_id(self) -> str:
        """An id no other client of a session will pick: for calls that ``session.cancel``
        and ``session.input`` name, which match ids within a session, not a connection."""
        return f"{self._prefix}-{next(self._ids)}"

    async def send_frame(self, text: str) -> None:
        """Send any text as one frame; its answer, if any, comes to ``next_unsolicited``."""
        socket = await self._current()
        await socket.websocket.send(text)

    async def notify(self, method: str, params: WireModel | Mapping[str, Any] | None) -> None:
        """A notification: the server runs it and answers nothing."""
        await self.send_frame(json.dumps(_message(method, params, None)))

    async def exchange(
        self,
        method: str,
        params: WireModel | Mapping[str, Any] | None = None,
        *,
        request_id: int | str | None = None,
        listener: Listener | None = None,
    ) -> dict[str, Any]:
        """The whole response to one request (``error`` included, not raised)."""
        try:
            return await self._exchange(method, params, request_id, listener)
        except ConnectionLost as exc:
            again = not exc.sent or method in IDEMPOTENT
            if not again or isinstance(exc, Unreachable) or self._closed:
                raise
        return await self._exchange(method, params, request_id, listener)  # on a new socket

    async def _exchange(
        self,
        method: str,
        params: WireModel | Mapping[str, Any] | None,
        request_id: int | str | None,
        listener: Listener | None,
    ) -> dict[str, Any]:
        future = await self.start(method, params, request_id=request_id, listener=listener)
        return await future

    async def start(
        self,
        method: str,
        params: WireModel | Mapping[str, Any] | None = None,
        *,
        request_id: int | str | None = None,
        listener: Listener | None = None,
    ) -> asyncio.Future[dict[str, Any]]:
        """Send one request and return the future of its whole response once it is on the
        wire; ``listener`` hears the notifications that carry its id as ``requestId``."""
        if method in LONG:
            await self._long_slots.acquire()
        try:
            socket = await self._current()
        except BaseException:
            if method in LONG:
                self._long_slots.release()
            raise
        key = self.next_id() if request_id is None else request_id
        call = _Call(method, asyncio.get_running_loop().create_future(), listener=listener)
        call.future.add_done_callback(_retrieved)
        if method in LONG:
            call.future.add_done_callback(lambda _: self._long_slots.release())
        socket.calls[key] = call
        try:
            await socket.websocket.send(json.dumps(_message(method, params, key)))
        except ConnectionClosed:
            socket.calls.pop(key, None)
            call.future.cancel()
            if socket.refusal is not None:
                raise socket.refusal from None
            raise ConnectionLost(
                "the connection dropped before the request went out", sent=False
            ) from None
        call.sent = True
        return call.future

    async def request(
        self,
        method: str,
        params: WireModel | None,
        result: type[Result],
        *,
        request_id: int | str | None = None,
        listener: Listener | None = None,
    ) -> Result:
        """The result of one call, validated as ``result``; an error answer is raised as the
        SDK's exception for its kind."""
        response = await self.exchange(method, params, request_id=request_id, listener=listener)
        if "error" in response:
            raise for_rpc_error(response["error"])
        return parse_reply(result, response.get("result"))


CLOSED: Final = object()
"""What ``next_unsolicited`` returns once the socket closed."""


def parse_reply(model: type[Result], data: Any) -> Result:
    """A reply as ``model``. Fields a newer server added are ignored, so an older client
    keeps working; a reply that does not fit at all is a ``ServerError``."""
    try:
        return model.model_validate(data, extra="ignore")
    except ValidationError as exc:
        detail = f"the server's reply is not a {model.__name__}: {exc.error_count()} errors"
        raise ServerError(detail, ErrorData(kind="bad_reply")) from exc


def _is_id(key: object) -> TypeGuard[int | str]:
    return isinstance(key, int | str) and not isinstance(key, bool)


def _retrieved(future: asyncio.Future[Any]) -> None:
    """A reply no one waits for any more (its caller gave up) fails quietly."""
    if not future.cancelled():
        future.exception()


def _kind(error: dict[str, Any]) -> Any:
    data = error.get("data")
    return data.get("kind") if isinstance(data, dict) else None


def _message(
    method: str, params: WireModel | Mapping[str, Any] | None, key: int | str | None
) -> dict[str, Any]:
    """The request envelope; ``params`` are JSON-ready already (a model's wire form, or a raw
    mapping a protocol test sends as it is), so the envelope is dumped as it stands."""
    wire = params.to_wire() if isinstance(params, WireModel) else params
    return RpcRequest(method=method, params=wire, id=key).model_dump(by_alias=True)
