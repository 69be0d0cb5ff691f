"""SessionManager: creates, finds, runs commands on, expires and closes sessions."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections import OrderedDict
from typing import Any

from loguru import logger

from codebeaker.api import Command, CommandOutcome, SessionConfig, SessionEvent
from codebeaker.api.commands import ExecuteShell
from codebeaker.commands import CommandIO, run_command
from codebeaker.exceptions import (
    ContainerGoneError,
    InputClosedError,
    LimitExceededError,
    SessionNotFoundError,
    SessionTerminatedError,
)
from codebeaker.runtimes import Runtime
from codebeaker.sandbox.driver import OutputSink, StdinPipe
from codebeaker.sessions.sandboxes import SandboxFactory
from codebeaker.sessions.session import Lifecycle, Session, SessionObserver
from codebeaker.settings import Settings

__all__ = ["SessionManager"]

TOMBSTONES = 1024  # how many terminated session ids still answer "terminated", not "not found"


class SessionManager:
    def __init__(self, sandboxes: SandboxFactory, settings: Settings) -> None:
        self._sandboxes = sandboxes
        self._settings = settings
        self._sessions: dict[str, Session] = {}
        self._starting = 0
        self._terminated: OrderedDict[str, str] = OrderedDict()

    def __len__(self) -> int:
        return len(self._sessions)

    async def create(self, runtime: Runtime, config: SessionConfig) -> Session:
        if len(self._sessions) + self._starting >= self._settings.max_sessions:
            raise LimitExceededError(
                "sessions",
                f"the server holds its maximum of {self._settings.max_sessions} sessions",
            )
        session_id = secrets.token_urlsafe(24)  # 192 random bits
        self._starting += 1
        try:
            driver = await self._sandboxes.start(
                runtime,
                kind="session",
                owner=session_id,
                memory_mb=config.memory_limit_mb,
                cpu_limit=config.cpu_limit,
            )
        finally:
            self._starting -= 1
        session = Session(session_id, runtime, config, driver)
        self._sessions[session_id] = session
        logger.info(
            "session {} created ({}, {})", session_id, runtime.name, driver.container_id[:12]
        )
        return session

    def get(self, session_id: str) -> Session:
        session = self._sessions.get(session_id)
        if session is None:
            reason = self._terminated.pop(session_id, None)
            if reason is not None:
                raise SessionTerminatedError(session_id, reason)
            raise SessionNotFoundError(session_id)
        return session

    def list(self) -> list[Session]:
        return sorted(self._sessions.values(), key=lambda session: session.created_at)

    async def execute(
        self,
        session_id: str,
        command: Command,
        *,
        on_output: OutputSink | None = None,
        interactive: bool = False,
        call_id: Any = None,
    ) -> CommandOutcome:
        """Run one command after those already queued on the session. ``interactive``
        keeps the program's stdin open for ``send_input`` (queued input waits for it).
        Watchers hear it start and end, and see a streamed command's output."""
        session = self.get(session_id)
        if on_output is not None:
            on_output = _fanned_out(session, on_output, call_id)
        session.execution_count += 1
        session.running += 1
        stdin = StdinPipe(self._settings.max_write_bytes) if interactive else None
        if stdin is not None:
            session.inputs.append(stdin)
        try:
            async with session.lock:
                if session.lifecycle is not Lifecycle.OPEN:  # closed while we queued
                    raise SessionNotFoundError(session_id)
                session.touch()
                io = CommandIO(session.config.env, on_output, stdin)
                session.announce(_started(session_id, command, call_id))
                outcome = await run_command(session.driver, command, self._settings, io)
                session.announce(_finished(session_id, command, call_id, outcome))
                return outcome
        except ContainerGoneError as exc:
            await self._terminate(session, exc.reason, remember=False)  # told right now
            raise SessionTerminatedError(session_id, exc.reason) from exc
        finally:
            if stdin is not None:
                session.inputs.remove(stdin)
            session.running -= 1
            session.touch()

    def watch(self, session_id: str, observer: SessionObserver) -> None:
        self.get(session_id).observers.add(observer)

    def unwatch(self, session_id: str, observer: SessionObserver) -> None:
        """A closed session has no watchers left to remove."""
        session = self._sessions.get(session_id)
        if session is not None:
            session.observers.discard(observer)

    def send_input(self, session_id: str, data: bytes, eof: bool) -> None:
        """To the oldest interactive command of the session whose stdin is still open
        (it may still be queued: the data waits for it)."""
        session = self.get(session_id)
        stdin = next((pipe for pipe in session.inputs if not pipe.closed), None)
        if stdin is None:
            raise InputClosedError(session_id)
        stdin.write(data, eof)
        session.touch()

    async def close(self, session_id: str, reason: str = "closed by client") -> None:
        session = self._sessions.pop(session_id, None)
        if session is None:
            raise SessionNotFoundError(session_id)
        session.transition(Lifecycle.CLOSING)
        _end_watches(session, reason)
        try:
            await self._sandboxes.remove(session.driver)
        finally:
            session.transition(Lifecycle.CLOSED)
        logger.info("session {} closed: {}", session_id, reason)

    async def close_all(self) -> None:
        results = await asyncio.gather(
            *(self.close(sid, "server shutdown") for sid in list(self._sessions)),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, Exception) and not isinstance(result, SessionNotFoundError):
                logger.error("could not close a session at shutdown: {}", result)

    async def reap(self) -> None:
        """Close expired sessions and forget those whose container vanished."""
        for session in list(self._sessions.values()):
            reason = session.expiry_reason()
            if reason is not None:
                with contextlib.suppress(SessionNotFoundError):  # closed meanwhile
                    await self.close(session.id, reason)
        candidates = list(self._sessions.values())  # before the snapshot: newer ones are alive
        if not candidates:
            return
        running = await self._sandboxes.running_containers()
        for session in candidates:
            if session.container_id not in running and session.lifecycle is Lifecycle.OPEN:
                await self._terminate(session, "container stopped or was removed")

    async def _terminate(self, session: Session, reason: str, *, remember: bool = True) -> None:
        """The container died behind our back: drop the session; the next call on it is
        told ``session_terminated`` once (if ``remember``), later ones ``session_not_found``."""
        if self._sessions.pop(session.id, None) is None:
            return
        session.transition(Lifecycle.CLOSING)
        _end_watches(session, reason)
        if remember:
            self._terminated[session.id] = reason
            while len(self._terminated) > TOMBSTONES:
                self._terminated.popitem(last=False)
        try:
            await self._sandboxes.remove(session.driver)
        finally:
            session.transition(Lifecycle.CLOSED)
        logger.warning("session {} terminated: {}", session.id, reason)


def _fanned_out(session: Session, sink: OutputSink, call_id: Any) -> OutputSink:
    def fanned_out(stream: str, data: bytes) -> None:
        sink(stream, data)
        for observer in list(session.observers):
            observer.output(call_id, stream, data)

    return fanned_out


def _started(session_id: str, command: Command, call_id: Any) -> SessionEvent:
    if isinstance(command, ExecuteShell):
        argv, path = [command.command_name, *command.args], None
    else:
        argv, path = None, getattr(command, "path", None) or getattr(command, "destination", None)
    return SessionEvent(
        session_id=session_id,
        event="command_started",
        request_id=call_id,
        command=command.type,
        argv=argv,
        path=path,
    )


def _finished(
    session_id: str, command: Command, call_id: Any, outcome: CommandOutcome
) -> SessionEvent:
    return SessionEvent(
        session_id=session_id,
        event="command_finished",
        request_id=call_id,
        command=command.type,
        success=outcome.success,
        exit_code=getattr(outcome.result, "exit_code", None),
        duration_ms=outcome.duration_ms,
    )


def _end_watches(session: Session, reason: str) -> None:
    """The last event a watcher of the session hears."""
    session.announce(SessionEvent(session_id=session.id, event="session_closed", reason=reason))
    session.observers.clear()
