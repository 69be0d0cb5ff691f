"""Which CodeBeaker sessions belong to which MCP client, and closing them when it goes.

A tool called without ``session_id`` acts on its client's own session, started on first use.
Who "the client" is depends on the transport:

- stdio: the process serves exactly one client, so the process owns the sessions; they are
  closed when the client closes stdin (or the process is stopped).
- Streamable HTTP, handshake-era clients (protocol up to 2025-11-25): each ``Mcp-Session-Id``
  is a client. Its sessions are closed when that MCP session ends (``DELETE``, idle timeout,
  crash), from the connection's ``exit_stack``, the SDK's per-connection teardown hook.
- Streamable HTTP, 2026-07-28 clients: that protocol has no sessions, so no client to own a
  sandbox; tools then need an explicit ``session_id`` (from ``session_create``), the
  "explicit handle" that protocol prescribes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any, Final

from mcp.server.connection import Connection
from mcp.server.mcpserver import Context
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from codebeaker_client import AsyncCodeBeaker, AsyncSession
from codebeaker_client.errors import CodeBeakerError
from codebeaker_client.mcp.settings import Transport

__all__ = ["STDIO_OWNER", "Owner", "Owners", "create_session"]

logger = logging.getLogger(__name__)

STDIO_OWNER: Final = "stdio"
SESSION_HEADER: Final = "mcp-session-id"
CLOSE_TIMEOUT: Final = 10.0
"""Closing one session waits at most this long (the container is removed in the background)."""
GONE: Final = "this MCP client has disconnected"

_closing: set[asyncio.Task[None]] = set()
"""Background closes of sessions created for a call that was cancelled meanwhile."""


class Owner:
    """One MCP client's sessions: its default one (started lazily) and those it created
    with ``session_create`` without ``keep``."""

    def __init__(self, key: str, client: AsyncCodeBeaker, language: str) -> None:
        self.key = key
        self._client = client
        self._language = language
        self._default: AsyncSession | None = None
        self._sessions: dict[str, AsyncSession] = {}
        self._lock = asyncio.Lock()
        self.closed = False

    async def default(self) -> AsyncSession:
        """The client's own session, started on first use (and again after it ended)."""
        async with self._lock:
            if self.closed:
                raise CodeBeakerError(GONE)
            if self._default is None:
                session = await create_session(self._client.create_session(self._language))
                self._default = session
                self._sessions[session.id] = session
                logger.info("client %s: started session %s", self.key, session.id)
            return self._default

    @property
    def default_id(self) -> str | None:
        return self._default.id if self._default is not None else None

    async def adopt(self, session: AsyncSession) -> None:
        """Close ``session`` along with this client's others; once the client has gone,
        close it now and raise ``CodeBeakerError``."""
        if self.closed:
            await _close(session)
            raise CodeBeakerError(GONE)
        self._sessions[session.id] = session

    def owns(self, session_id: str) -> bool:
        return session_id in self._sessions

    def forget(self, session_id: str) -> None:
        """Stop owning a session (it was closed, or it ended by itself)."""
        self._sessions.pop(session_id, None)
        if self._default is not None and self._default.id == session_id:
            self._default = None

    async def close(self) -> list[str]:
        """Close every session this client owns; their ids. Idempotent."""
        async with self._lock:
            self.closed = True
            sessions, self._sessions, self._default = list(self._sessions.values()), {}, None
        await asyncio.gather(*(_close(session) for session in sessions))
        if sessions:
            logger.info("client %s gone: closed sessions %s", self.key, [s.id for s in sessions])
        return [session.id for session in sessions]


async def create_session(creating: Awaitable[AsyncSession]) -> AsyncSession:
    """The session ``creating`` makes. A cancelled caller does not interrupt the creation,
    which would leave a session on the server that nobody knows of: it runs on, and the
    session it makes is closed in the background."""
    task = asyncio.ensure_future(creating)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        task.add_done_callback(_close_orphan)
        raise


def _close_orphan(task: asyncio.Future[AsyncSession]) -> None:
    if task.cancelled() or task.exception() is not None:
        return
    closing = asyncio.get_running_loop().create_task(_close(task.result()))
    _closing.add(closing)
    closing.add_done_callback(_closing.discard)


async def _close(session: AsyncSession) -> None:
    try:
        await asyncio.wait_for(session.close(), CLOSE_TIMEOUT)
    except (CodeBeakerError, TimeoutError) as exc:
        logger.warning("could not close session %s: %s", session.id, exc)


class Owners:
    """Every client's ``Owner``, found from a tool call's context."""

    def __init__(
        self,
        client: AsyncCodeBeaker,
        *,
        transport: Transport,
        language: str,
        released: Callable[[list[str]], None] | None = None,
    ) -> None:
        self._client = client
        self._transport = transport
        self._language = language
        self._released = released
        self._owners: dict[str, Owner] = {}
        self._warned = False

    def identify(self, ctx: Context[Any, Any]) -> Owner | None:
        """The calling client's ``Owner`` (made on first sight), or None when the client has
        no identity to own a session by (a 2026-07-28 client over HTTP)."""
        if self._transport == "stdio":
            return self._owner(STDIO_OWNER, None)
        if ctx.protocol_version in MODERN_PROTOCOL_VERSIONS:
            return None
        mcp_session = (ctx.headers or {}).get(SESSION_HEADER)
        if not mcp_session:
            return None
        return self._owner(f"http:{mcp_session}", _exit_stack(ctx))

    def _owner(self, key: str, teardown: AsyncExitStack | None) -> Owner:
        owner = self._owners.get(key)
        if owner is None:
            owner = self._owners[key] = Owner(key, self._client, self._language)
            if teardown is not None:
                teardown.push_async_callback(self.release, key)
            elif key != STDIO_OWNER and not self._warned:
                self._warned = True
                logger.warning(
                    "this mcp version gives no per-connection teardown hook: sessions of "
                    "HTTP clients are closed only when the server stops (or expire)"
                )
        return owner

    def holder(self, session_id: str) -> Owner | None:
        """The client owning ``session_id``, if any."""
        return next((owner for owner in self._owners.values() if owner.owns(session_id)), None)

    async def release(self, key: str) -> None:
        """The client ``key`` is gone: close its sessions and forget it."""
        owner = self._owners.pop(key, None)
        if owner is None:
            return
        closed = await owner.close()
        if self._released is not None:
            self._released(closed)

    async def close(self) -> None:
        """Release every client (at shutdown)."""
        await asyncio.gather(*(self.release(key) for key in list(self._owners)))


def _exit_stack(ctx: Context[Any, Any]) -> AsyncExitStack | None:
    """The exit stack of the connection carrying this request (unwound when it closes).

    mcp 2.x documents ``Connection.exit_stack`` as the place for per-connection teardown,
    but does not reach it from a tool's context yet (its migration guide says a public way is
    planned), so it is read off the request's session proxy; None if that ever moves.
    """
    connection = getattr(ctx.request_context.session, "_connection", None)
    return connection.exit_stack if isinstance(connection, Connection) else None
