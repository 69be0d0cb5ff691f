"""One socket's outgoing messages, in order, with output coalesced (seed 004's 40 ms ticker).

Program output is buffered and sent at most every ``FLUSH_SECONDS``: an endless print loop
becomes one frame per tick, not one per write. Output after a quiet spell goes at once, so
the first byte is not held back. Any other message goes at once too, after the output that
came before it. Output waiting here is bounded by the run's output cap; ``backlog`` counts
the other messages' bytes still unsent, which the socket bounds (a client that sends but
never reads would otherwise pile up replies).
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
from collections.abc import Awaitable, Callable

from loguru import logger

from codebeaker.api.live import LiveMessage, OutputMessage, Stream
from codebeaker.api.wire import dumps

__all__ = ["FLUSH_SECONDS", "Outbox"]

FLUSH_SECONDS = 0.04
Send = Callable[[str], Awaitable[None]]


class _Output:
    def __init__(self, stream: Stream, data: bytes) -> None:
        self.stream = stream
        self.data = bytearray(data)


class Outbox:
    def __init__(self, send: Send, interval: float = FLUSH_SECONDS) -> None:
        self._send = send
        self._interval = interval
        self._items: list[_Output | str] = []
        """Output, and other messages already rendered as their frames."""
        self.backlog = 0
        """Bytes of messages (not output) queued or being sent."""
        self._urgent = False
        self._closing = False
        self._wake = asyncio.Event()
        self._hurry = asyncio.Event()
        """Cuts a coalescing wait short: a message or the close is waiting."""
        self._last = float("-inf")
        # A multi-byte character split across two writes must not become two U+FFFDs.
        self._decoders: dict[Stream, codecs.IncrementalDecoder] = {
            "stdout": codecs.getincrementaldecoder("utf-8")(errors="replace"),
            "stderr": codecs.getincrementaldecoder("utf-8")(errors="replace"),
        }
        self._pump = asyncio.create_task(self._run())

    def output(self, stream: Stream, data: bytes) -> None:
        last = self._items[-1] if self._items else None
        if isinstance(last, _Output) and last.stream == stream:
            last.data += data
        else:
            self._items.append(_Output(stream, data))
        self._wake.set()

    def message(self, message: LiveMessage) -> None:
        frame = dumps(message.to_wire())
        self.backlog += len(frame)
        self._items.append(frame)
        self._urgent = True
        self._hurry.set()
        self._wake.set()

    def abort(self) -> None:
        """Stop at once, dropping what is queued (the client does not read)."""
        self._items.clear()
        self._pump.cancel()

    async def close(self) -> None:
        """Send everything still here, then stop."""
        self._closing = True
        self._hurry.set()
        self._wake.set()
        with contextlib.suppress(asyncio.CancelledError):
            await self._pump

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            delay = self._last + self._interval - loop.time()
            if delay > 0 and not (self._urgent or self._closing):
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._hurry.wait(), delay)
            self._wake.clear()  # everything queued until now goes in this flush
            self._hurry.clear()
            items, self._items, self._urgent = self._items, [], False
            for item in items:
                await self._deliver(item)
                if isinstance(item, str):
                    self.backlog -= len(item)
            if items:
                self._last = loop.time()
            if self._closing and not self._items:
                await self._flush_decoders()
                return

    async def _deliver(self, item: _Output | str) -> None:
        if isinstance(item, _Output):
            await self._text(item.stream, self._decoders[item.stream].decode(bytes(item.data)))
            return
        await self._flush_decoders()
        await self._transmit(item)

    async def _flush_decoders(self) -> None:
        """A dangling partial character becomes U+FFFD before whatever comes next."""
        for stream, decoder in self._decoders.items():
            await self._text(stream, decoder.decode(b"", final=True))

    async def _text(self, stream: Stream, text: str) -> None:
        if text:
            await self._transmit(dumps(OutputMessage(type=stream, data=text).to_wire()))

    async def _transmit(self, frame: str) -> None:
        try:
            await self._send(frame)
        except Exception as exc:  # the socket is gone: nothing else can be told either
            logger.debug("dropped a message for a closed socket: {}", exc)
