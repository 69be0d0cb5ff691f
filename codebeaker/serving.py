"""Connection bounds uvicorn lacks: a cap on open connections, and a deadline for each
HTTP request (a WebSocket's upgrade request included) to arrive whole.

uvicorn times out idle keep-alive connections but not one that never finishes its request
(slowloris), and accepts connections until descriptors run out. Its HTTP protocol is
pluggable (``uvicorn.Config(http=…)``); ``guarded_http`` subclasses the one uvicorn would
pick (httptools) through the parser callbacks and ``asyncio.Protocol`` methods only.
"""

from __future__ import annotations

import asyncio
import resource
import time
from typing import ClassVar

from loguru import logger
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["GuardedHttpProtocol", "guarded_http", "raise_nofile"]

REFUSAL = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    b"content-type: text/plain; charset=utf-8\r\n"
    b"content-length: 21\r\n"
    b"retry-after: 1\r\n"
    b"connection: close\r\n\r\n"
    b"too many connections\n"
)
REFUSAL_LOG_SECONDS = 10.0
"""Refusals are logged at most this often, counted: an attack must not flood the log."""


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a connection cap and a request deadline."""

    max_connections: ClassVar[int] = 1024
    handshake_timeout: ClassVar[float] = 10.0
    _refused_since_log: ClassVar[int] = 0
    _last_log: ClassVar[float] = 0.0

    _refused = False
    _complete = False
    _deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if len(self.connections) >= self.max_connections:
            self._refused = True
            transport.write(REFUSAL)
            transport.close()
            self._note_refusal()
            return
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if not self._refused:
            super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if not self._refused:
            super().data_received(data)

    def on_message_begin(self) -> None:
        """A (next) request starts arriving: it has the deadline to arrive whole."""
        super().on_message_begin()
        self._complete = False
        if self._deadline is None:
            self._arm()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._complete = True
        self._disarm()

    def _arm(self) -> None:
        self._deadline = self.loop.call_later(self.handshake_timeout, self._expire)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        """Close the connection unless its request arrived (or, upgraded to a WebSocket,
        its handshake completed)."""
        self._deadline = None
        current = self.transport.get_protocol()
        if current is self:
            late = not self._complete
        else:
            late = not getattr(current, "handshake_complete", True)
        if late and not self.transport.is_closing():
            logger.debug("closing {}: no whole request in {}s", self.client, self.handshake_timeout)
            self.transport.close()

    @classmethod
    def _note_refusal(cls) -> None:
        cls._refused_since_log += 1
        now = time.monotonic()
        if now - cls._last_log >= REFUSAL_LOG_SECONDS:
            logger.warning(
                "refused {} connection(s): {} open (CODEBEAKER_MAX_CONNECTIONS)",
                cls._refused_since_log,
                cls.max_connections,
            )
            cls._refused_since_log = 0
            cls._last_log = now


def guarded_http(max_connections: int, handshake_timeout: float) -> type[GuardedHttpProtocol]:
    """The protocol class to hand uvicorn, with these bounds."""
    return type(
        "GuardedHttpProtocol",
        (GuardedHttpProtocol,),
        {"max_connections": max_connections, "handshake_timeout": handshake_timeout},
    )


def raise_nofile(max_connections: int) -> int:
    """Raise the soft descriptor limit to the hard one (each connection holds one; each
    session's Docker streams hold more); the limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError) as exc:
            logger.warning("could not raise the descriptor limit from {}: {}", soft, exc)
        else:
            logger.info("descriptor limit (nofile) raised from {} to {}", soft, hard)
            soft = hard
    else:
        logger.info("descriptor limit (nofile): {}", soft)
    if soft != resource.RLIM_INFINITY and max_connections + 256 > soft:
        logger.warning(
            "CODEBEAKER_MAX_CONNECTIONS={} leaves too few of the {} descriptors for sessions",
            max_connections,
            soft,
        )
    return soft
