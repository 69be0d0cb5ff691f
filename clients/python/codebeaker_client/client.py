"""``AsyncCodeBeaker``: sessions and one-shot runs over one shared, self-healing connection."""

from __future__ import annotations

import os
from collections.abc import Callable, Generator, Mapping
from types import TracebackType
from typing import Any

from codebeaker_client.connection import DEFAULT_URL, Connection, Listener
from codebeaker_client.errors import SessionNotFound
from codebeaker_client.models.requests import CreateSessionRequest, NoParams, RunRequest
from codebeaker_client.models.results import RunResult, SessionInfo, SessionList, SessionSummary
from codebeaker_client.params import build
from codebeaker_client.session import AsyncSession

__all__ = ["AsyncCodeBeaker", "SessionStart"]


class SessionStart:
    """``create_session``'s answer: await it for the session, or ``async with`` it to have
    the session closed at the end of the block."""

    def __init__(self, client: AsyncCodeBeaker, request: CreateSessionRequest) -> None:
        self._client = client
        self._request = request
        self._session: AsyncSession | None = None

    async def _create(self) -> AsyncSession:
        connection = self._client.connection
        info = await connection.request("session.create", self._request, SessionInfo)
        return AsyncSession(connection, info.session_id, info.language)

    def __await__(self) -> Generator[Any, None, AsyncSession]:
        return self._create().__await__()

    async def __aenter__(self) -> AsyncSession:
        self._session = await self._create()
        return self._session

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._session is not None:
            await self._session.__aexit__(exc_type, exc, traceback)


class AsyncCodeBeaker:
    """A client of one CodeBeaker server. ``url`` and ``api_key`` default to
    ``CODEBEAKER_URL`` and ``CODEBEAKER_API_KEY``. Every call shares one WebSocket, opened on
    first use and opened again by itself after it drops."""

    def __init__(
        self,
        url: str | None = None,
        *,
        api_key: str | None = None,
        connect_timeout: float = 20.0,
        reconnect_attempts: int = 5,
        on_frame: Callable[[str], None] | None = None,
        on_notification: Listener | None = None,
    ) -> None:
        self.connection = Connection(
            url or os.environ.get("CODEBEAKER_URL") or DEFAULT_URL,
            api_key=api_key if api_key is not None else os.environ.get("CODEBEAKER_API_KEY"),
            connect_timeout=connect_timeout,
            reconnect_attempts=reconnect_attempts,
            on_frame=on_frame,
            on_notification=on_notification,
        )

    async def __aenter__(self) -> AsyncCodeBeaker:
        await self.connection.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the connection. Sessions live on in the server until closed or expired."""
        await self.connection.close()

    def create_session(
        self,
        language: str,
        *,
        memory_limit_mb: int | None = None,
        cpu_limit: float | None = None,
        idle_timeout_minutes: float | None = None,
        max_lifetime_minutes: float | None = None,
        env: Mapping[str, str] | None = None,
    ) -> SessionStart:
        """A new sandbox running ``language`` (a name or alias, e.g. ``"py"``)."""
        request = build(
            CreateSessionRequest,
            language=language,
            memory_limit_mb=memory_limit_mb,
            cpu_limit=cpu_limit,
            idle_timeout_minutes=idle_timeout_minutes,
            max_lifetime_minutes=max_lifetime_minutes,
            env=dict(env or {}),
        )
        return SessionStart(self, request)

    async def list_sessions(self) -> list[SessionSummary]:
        result = await self.connection.request("session.list", NoParams(), SessionList)
        return result.sessions

    async def get_session(self, session_id: str) -> AsyncSession:
        """Reattach to a session by id (one created by any client with the same key)."""
        for summary in await self.list_sessions():
            if summary.session_id == session_id:
                return AsyncSession(self.connection, session_id, summary.language)
        raise SessionNotFound(f"session not found: {session_id}")

    async def run(
        self,
        language: str,
        code: str,
        *,
        stdin: str | None = None,
        timeout: float | None = None,
        memory_limit_mb: int | None = None,
    ) -> RunResult:
        """Compile (if need be) and run one program in a throwaway sandbox."""
        request = build(
            RunRequest,
            language=language,
            code=code,
            stdin=stdin,
            timeout_seconds=timeout,
            memory_limit_mb=memory_limit_mb,
        )
        return await self.connection.request("execution.run", request, RunResult)
