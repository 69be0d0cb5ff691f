"""``session.output`` notifications: a streamed command's output, as it arrives.

Pieces are decoded incrementally (a UTF-8 character split across two reads is not
mangled) and coalesced: at most one notification per stream every 50 ms, the first at
once, so a prompt shows up immediately and a flood does not drown the connection.
"""

from __future__ import annotations

import asyncio
import codecs
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from codebeaker.api import OutputChunk, WireModel

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

    def _wake(self) -> None:
        if self._sender is None or self._sender.done():
            self._sender = asyncio.create_task(self._send_pending())

    async def _send_pending(self) -> None:
        loop = asyncio.get_running_loop()
        while any(self._pending.values()):
            delay = self._last + FLUSH_SECONDS - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            self._last = loop.time()
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
                    await self._notify("session.output", chunk)

    async def close(self) -> None:
        """Send everything still held; the final response goes out after this."""
        for stream, decoder in self._decoders.items():
            if tail := decoder.decode(b"", final=True):
                self._pending[stream].append(tail)
        if any(self._pending.values()):
            self._wake()
        if self._sender is not None:
            await self._sender
