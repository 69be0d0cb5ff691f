"""``session.output`` notifications: a streamed command's output, as it arrives; and
``session.display``: each value a streamed cell shows, in order with that output.

Pieces are decoded incrementally (a UTF-8 character split across two reads is not
mangled) and coalesced: at most one notification per stream every 50 ms, the first at
once, so a prompt shows up immediately and a flood does not drown the connection. A
displayed value goes out at once, after the output printed before it.
"""

from __future__ import annotations

import asyncio
import codecs
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from codebeaker_client.models import OutputChunk, WireModel
from codebeaker_client.models.contexts import DisplayData, DisplayNotification

__all__ = ["FLUSH_SECONDS", "Notify", "OutputForwarder", "nowhere"]

FLUSH_SECONDS = 0.05
Stream = Literal["stdout", "stderr"]
STREAMS: tuple[Stream, ...] = ("stdout", "stderr")
Notify = Callable[[str, WireModel], Awaitable[None]]
"""Sends one JSON-RPC notification (method, params) on the caller's connection."""


async def nowhere(method: str, params: WireModel) -> None:
    """Where notifications go when the caller has no connection to send them on."""


class OutputForwarder:
    def __init__(self, notify: Notify, session_id: str, request_id: Any) -> None:
        self._notify = notify
        self._session_id = session_id
        self._request_id = request_id
        self._ready: deque[tuple[str, WireModel]] = deque()
        """Notifications due now, in order (a display and the output before it)."""
        self._decoders = {
            stream: codecs.getincrementaldecoder("utf-8")(errors="replace") for stream in STREAMS
        }
        self._pending: dict[Stream, list[str]] = {stream: [] for stream in STREAMS}
        self._sender: asyncio.Task[None] | None = None
        self._last = -FLUSH_SECONDS

    def feed(self, stream: str, data: bytes) -> None:
        """The driver's output sink: never blocks, never raises."""
        name: Stream = "stdout" if stream == "stdout" else "stderr"
        text = self._decoders[name].decode(data)
        if text:
            self._pending[name].append(text)
            self._wake()

    def show(self, result: DisplayData) -> None:
        """A cell's displayed value (the display sink): after the output before it."""
        self._ready.extend(self._chunks())
        params = DisplayNotification(
            session_id=self._session_id,
            request_id=self._request_id,
            result=result,
        )
        self._ready.append(("session.display", params))
        self._wake()

    def _wake(self) -> None:
        if self._sender is None or self._sender.done():
            self._sender = asyncio.create_task(self._send_pending())

    def _chunks(self) -> list[tuple[str, WireModel]]:
        """The output held so far, as notifications; held no more."""
        chunks: list[tuple[str, WireModel]] = []
        for stream, parts in self._pending.items():
            if parts:
                data = "".join(parts)
                parts.clear()
                chunk = OutputChunk(
                    session_id=self._session_id,
                    request_id=self._request_id,
                    stream=stream,
                    data=data,
                )
                chunks.append(("session.output", chunk))
        return chunks

    async def _send_pending(self) -> None:
        loop = asyncio.get_running_loop()
        while self._ready or any(self._pending.values()):
            if self._ready:
                await self._notify(*self._ready.popleft())
                continue
            delay = self._last + FLUSH_SECONDS - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            self._last = loop.time()
            self._ready.extend(self._chunks())

    async def close(self) -> None:
        """Send everything still held; the final response goes out after this."""
        for stream, decoder in self._decoders.items():
            if tail := decoder.decode(b"", final=True):
                self._pending[stream].append(tail)
        if self._ready or any(self._pending.values()):
            self._wake()
        if self._sender is not None:
            await self._sender
