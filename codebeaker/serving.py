"""Connection bounds uvicorn lacks: a cap on open connections, a deadline for each HTTP
request (a WebSocket's upgrade request included) to arrive whole, and one for a response
the client does not read.

uvicorn times out idle keep-alive connections but not one that never finishes its request
(slowloris), nor one that keeps sending bare CRLFs between requests (each byte cancels the
keep-alive timer, and the parser starts no message for them), nor one whose ASGI task
waits forever for a client that never reads; and it accepts connections until descriptors
run out. Its HTTP protocol is
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
WRITE_STALL_SECONDS = 60.0
"""How long a response may find the client's window shut (the transport's writing paused)
before the connection is aborted: a reader that slow holds a slot and a task for nothing."""


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a connection cap, a request deadline and a
    write-stall deadline."""

    max_connections: ClassVar[int] = 1024
    handshake_timeout: ClassVar[float] = 10.0
    write_stall_timeout: ClassVar[float] = WRITE_STALL_SECONDS
    _refused_since_log: ClassVar[int] = 0
    _last_log: ClassVar[float] = 0.0

    _refused = False
    _parsing = False
    """A request has begun arriving and has not arrived whole."""
    _deadline: asyncio.TimerHandle | None = None
    _stall: asyncio.TimerHandle | None = None

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
        self._unstall()
        if not self._refused:
            super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._deadline is None and self._idle():
            # uvicorn cancels its keep-alive timer on any byte, and bare CRLFs between
            # requests start no message: whatever arrives now has the deadline to become one
            self._arm()
        super().data_received(data)

    def on_message_begin(self) -> None:
        """A (next) request starts arriving: it has the deadline to arrive whole."""
        super().on_message_begin()
        self._parsing = True
        if self._deadline is None:
            self._arm()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._parsing = False
        self._disarm()

    def pause_writing(self) -> None:
        """The client's window is shut: it has ``write_stall_timeout`` to read again."""
        super().pause_writing()
        if self._stall is None:
            self._stall = self.loop.call_later(self.write_stall_timeout, self._stalled)

    def resume_writing(self) -> None:
        super().resume_writing()
        self._unstall()

    def _idle(self) -> bool:
        """No request arriving, none being answered: the connection waits for the next."""
        return not self._parsing and (self.cycle is None or self.cycle.response_complete)

    def _arm(self) -> None:
        self._deadline = self.loop.call_later(self.handshake_timeout, self._expire)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _unstall(self) -> None:
        if self._stall is not None:
            self._stall.cancel()
            self._stall = None

    def _expire(self) -> None:
        """Close the connection: no whole request arrived since the deadline was armed (or,
        upgraded to a WebSocket, its handshake did not complete)."""
        self._deadline = None
        current = self.transport.get_protocol()
        late = current is self or not getattr(current, "handshake_complete", True)
        if late and not self.transport.is_closing():
            logger.debug("closing {}: no whole request in {}s", self.client, self.handshake_timeout)
            self.transport.close()

    def _stalled(self) -> None:
        """Abort (closing would wait for the unread bytes to drain): the response task
        waiting on the client ends with the connection."""
        self._stall = None
        if self.transport.get_protocol() is self and not self.transport.is_closing():
            logger.debug(
                "aborting {}: it read nothing for {}s", self.client, self.write_stall_timeout
            )
            self.transport.abort()

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


def guarded_http(
    max_connections: int,
    handshake_timeout: float,
    write_stall_timeout: float = WRITE_STALL_SECONDS,
) -> type[GuardedHttpProtocol]:
    """The protocol class to hand uvicorn, with these bounds."""
    return type(
        "GuardedHttpProtocol",
        (GuardedHttpProtocol,),
        {
            "max_connections": max_connections,
            "handshake_timeout": handshake_timeout,
            "write_stall_timeout": write_stall_timeout,
        },
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
