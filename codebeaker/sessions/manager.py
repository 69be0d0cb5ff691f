"""SessionManager: creates, finds, runs commands on, expires and closes sessions."""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import functools
import secrets
import time
from collections import Counter, OrderedDict
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

from codebeaker_client.models import Command, CommandOutcome, SessionConfig, SessionEvent
from codebeaker_client.models.commands import ExecuteShell, ShellResult
from codebeaker_client.models.contexts import CodeError, RunCodeRequest, RunCodeResult
from loguru import logger

from codebeaker.commands import CommandIO, run_command
from codebeaker.commands.paths import resolve
from codebeaker.constants import LOCAL_TENANT, WORKSPACE
from codebeaker.exceptions import (
    CommandFailedError,
    ContainerGoneError,
    InputClosedError,
    LimitExceededError,
    SessionNotFoundError,
    SessionTerminatedError,
    UnsupportedLanguageError,
)
from codebeaker.metrics import (
    SESSIONS_CLOSED,
    SESSIONS_CREATED,
    close_reason,
    count_cell,
    count_command,
)
from codebeaker.runtimes import Runtime, RuntimeRegistry
from codebeaker.sandbox.driver import (
    CANCELLED,
    CellRequest,
    CellResult,
    DisplaySink,
    OutputSink,
    StdinPipe,
)
from codebeaker.sessions.contexts import CodeContext, ContextRegistry, display_data
from codebeaker.sessions.jobs import Job, JobState, take_turn
from codebeaker.sessions.records import SessionRecord, SessionRecords
from codebeaker.sessions.sandboxes import SandboxFactory
from codebeaker.sessions.session import Lifecycle, Session, SessionObserver
from codebeaker.settings import Settings
from codebeaker.tenants import LOCAL, Tenant

__all__ = ["SessionManager"]

TOMBSTONES = 1024  # how many terminated session ids still answer "terminated", not "not found"
CANCEL_WAIT_SECONDS = 30.0  # session.cancel waits this long at most for what it stopped to end


class SessionManager:
    def __init__(
        self, sandboxes: SandboxFactory, settings: Settings, records: SessionRecords | None = None
    ) -> None:
        self._sandboxes = sandboxes
        self._settings = settings
        self._records = records
        """Where sessions are recorded for the next server to adopt (none: not at all)."""
        self._sessions: dict[str, Session] = {}
        self._starting: Counter[str] = Counter()
        """Sessions whose container is starting, by tenant."""
        self._terminated: OrderedDict[str, tuple[str, str]] = OrderedDict()
        """Tenant and reason of sessions whose container died, by id."""

    def __len__(self) -> int:
        return len(self._sessions)

    async def create(
        self, runtime: Runtime, config: SessionConfig, tenant: Tenant = LOCAL
    ) -> Session:
        if len(self._sessions) + self._starting.total() >= self._settings.max_sessions:
            raise LimitExceededError(
                "sessions",
                f"the server holds its maximum of {self._settings.max_sessions} sessions",
            )
        self._check_quota(tenant)
        session_id = secrets.token_urlsafe(24)  # 192 random bits
        self._starting[tenant.name] += 1
        try:
            driver = await self._sandboxes.start(
                runtime,
                kind="session",
                owner=session_id,
                memory_mb=config.memory_limit_mb,
                cpu_limit=config.cpu_limit,
                lifetime_seconds=config.max_lifetime_minutes * 60,
            )
        finally:
            self._starting[tenant.name] -= 1
        contexts = ContextRegistry(session_id, driver, self._settings, config.env)
        session = Session(session_id, runtime, config, driver, contexts, tenant.name)
        if self._records is not None:
            await self._records.add(self._record(session))
        self._register(session)
        SESSIONS_CREATED.labels(language=runtime.name, tenant=session.tenant).inc()
        logger.info(
            "session {} created ({}, {})", session_id, runtime.name, driver.container_id[:12]
        )
        return session

    def _register(self, session: Session) -> None:
        self._sessions[session.id] = session
        if self._records is not None:
            session.on_activity = self._noted
        if session.runtime.default_context and session.driver.hosts_contexts:
            session.contexts.default(WORKSPACE)

    def _noted(self, session: Session) -> None:
        if self._records is not None:
            self._records.note(session.id, session.last_activity, session.execution_count)

    def _record(self, session: Session) -> SessionRecord:
        return SessionRecord(
            session_id=session.id,
            tenant=session.tenant,
            language=session.runtime.name,
            config=session.config,
            container_id=session.container_id,
            driver=self._sandboxes.kind_of(session.driver),
            created_at=session.created_at,
            last_activity=session.last_activity,
            execution_count=session.execution_count,
        )

    async def adopt(self, runtimes: RuntimeRegistry) -> builtins.list[str]:
        """Take over the sessions an earlier server of this instance left running (killed,
        or stopped with ``shutdown=keep``); their container ids. A record that cannot be
        adopted is dropped (its container is then a leftover)."""
        if self._records is None:
            return []
        entries = await self._records.all()
        adopted = await asyncio.gather(*(self._adopt(entry, runtimes) for entry in entries))
        return [container_id for container_id in adopted if container_id is not None]

    async def _adopt(
        self, entry: SessionRecord | tuple[str, str], runtimes: RuntimeRegistry
    ) -> str | None:
        assert self._records is not None
        if isinstance(entry, tuple):
            await self._records.forget(entry[0])
            return None
        record = entry
        reason = record.expiry_reason(datetime.now(UTC))
        try:
            runtime = runtimes.get(record.language)
        except UnsupportedLanguageError:
            reason = f"language {record.language!r} is no longer served"
        driver = None if reason else await self._sandboxes.adopt(record)
        if driver is None:
            logger.info("session {} not adopted: {}", record.session_id, reason or "see above")
            await self._records.forget(record.session_id)
            return None
        contexts = ContextRegistry(record.session_id, driver, self._settings, record.config.env)
        session = Session(
            record.session_id, runtime, record.config, driver, contexts, tenant=record.tenant
        )
        session.resume(record.created_at, record.last_activity, record.execution_count)
        self._register(session)
        logger.info("session {} adopted ({})", session.id, driver.container_id[:12])
        return driver.container_id

    async def detach_all(self) -> builtins.list[str]:
        """Shutdown with ``shutdown=keep``: let go of every session but leave its container
        and record for the next server; their container ids. Running commands are cut."""
        kept = [session.container_id for session in self._sessions.values()]
        sessions = list(self._sessions.values())
        self._sessions.clear()
        for session in sessions:
            session.transition(Lifecycle.CLOSING)
            _end_watches(session, "server shutdown")
            await session.driver.aclose()
            session.transition(Lifecycle.CLOSED)
        return kept

    def _check_quota(self, tenant: Tenant) -> None:
        """``maxSessions``: its open and starting sessions; ``retryAfter`` is when the
        first of its sessions would expire if left alone."""
        limit = tenant.max_sessions
        if limit is None:
            return
        held = self.list(tenant.name)
        if len(held) + self._starting[tenant.name] < limit:
            return
        now = time.monotonic()
        soonest = min((_expires_in(session, now) for session in held), default=60.0)
        raise LimitExceededError(
            "tenant_sessions",
            f"tenant {tenant.name!r} holds its maximum of {limit} sessions",
            retry_after=max(1.0, round(soonest, 1)),
        )

    def get(self, session_id: str, tenant: str = LOCAL_TENANT) -> Session:
        """The session, if ``tenant`` owns it: another tenant's is not found, the one
        place sessions are kept apart."""
        session = self._sessions.get(session_id)
        if session is None or session.tenant != tenant:
            owner, reason = self._terminated.get(session_id, (None, ""))
            if owner == tenant:
                del self._terminated[session_id]
                raise SessionTerminatedError(session_id, reason)
            raise SessionNotFoundError(session_id)
        return session

    def __iter__(self) -> Iterator[Session]:
        """Every session of every tenant: for the operator's views (metrics), never a client's."""
        return iter(builtins.list(self._sessions.values()))

    def list(self, tenant: str = LOCAL_TENANT) -> builtins.list[Session]:
        """The tenant's sessions, oldest first."""
        owned = [session for session in self._sessions.values() if session.tenant == tenant]
        return sorted(owned, key=lambda session: session.created_at)

    async def execute(
        self,
        session_id: str,
        command: Command,
        *,
        on_output: OutputSink | None = None,
        interactive: bool = False,
        call_id: Any = None,
        tenant: str = LOCAL_TENANT,
    ) -> CommandOutcome:
        """Run one command after those already queued on the session. ``interactive``
        keeps the program's stdin open for ``send_input`` (queued input waits for it).
        Watchers hear it start and end, and see a streamed command's output.
        ``session.cancel`` stops it (``cancel``)."""
        session = self.get(session_id, tenant)
        if on_output is not None:
            on_output = _fanned_out(session, on_output, call_id)
        stdin = StdinPipe(self._settings.max_write_bytes) if interactive else None
        job = Job(call_id, stdin=stdin, stoppable=isinstance(command, ExecuteShell))
        queued = time.perf_counter()
        async with self._busy(session, job):
            if not await take_turn(session.lock, job):
                return _not_started(queued)
            try:
                if session.lifecycle is not Lifecycle.OPEN:  # closed while we queued
                    raise SessionNotFoundError(session_id)
                session.touch()
                io = CommandIO(session.config.env, on_output, stdin, job.cancel)
                session.announce(_started(session_id, command, call_id))
                outcome = await run_command(session.driver, command, self._settings, io)
                count_command(command.type, outcome)
                job.cancelled = isinstance(outcome.result, ShellResult) and outcome.result.cancelled
                session.announce(_finished(session_id, command, call_id, outcome))
                return outcome
            finally:
                session.lock.release()

    @contextlib.asynccontextmanager
    async def _busy(self, session: Session, job: Job) -> AsyncIterator[None]:
        """A command or cell queued or running on the session: counted, findable by
        ``cancel`` and its live stdin by ``send_input``; a container found gone ends the
        session."""
        session.execution_count += 1
        session.running += 1
        session.jobs.add(job)
        try:
            yield
        except ContainerGoneError as exc:
            await self._terminate(session, exc.reason, remember=False)  # told right now
            raise SessionTerminatedError(session.id, exc.reason) from exc
        finally:
            session.jobs.remove(job)
            job.transition(JobState.DONE)
            session.running -= 1
            session.touch()

    async def cancel(
        self, session_id: str, call_id: Any = None, *, tenant: str = LOCAL_TENANT
    ) -> builtins.list[Any]:
        """Stop the call ``call_id`` of the session, running or queued; without one, every
        command and cell running now. A queued one will not run; a running command is
        killed with its tree, a running cell interrupted. Returns, once they ended (or
        ``CANCEL_WAIT_SECONDS`` passed), the ids of those that were stopped, oldest first:
        one that ended on its own meanwhile is not among them."""
        session = self.get(session_id, tenant)
        session.touch()
        targets = session.jobs.targets(call_id)
        for job in targets:
            job.cancel.set()
        for job in targets:
            if job.interrupt is not None and job.state is JobState.RUNNING:
                try:
                    job.cancelled = await job.interrupt() or job.cancelled
                except CommandFailedError as exc:  # the sandbox lost it: the cell fails anyway
                    logger.info(
                        "cell {!r} of session {} not interrupted: {}", job.call_id, session_id, exc
                    )
        if targets:
            ends = [asyncio.ensure_future(job.ended.wait()) for job in targets]
            _, late = await asyncio.wait(ends, timeout=CANCEL_WAIT_SECONDS)
            for waiter in late:
                waiter.cancel()
        return [job.call_id for job in targets if job.cancelled]

    def contexts(self, session_id: str, tenant: str = LOCAL_TENANT) -> ContextRegistry:
        """The session's code contexts; asking for them is activity (the idle timeout)."""
        session = self.get(session_id, tenant)
        session.touch()
        return session.contexts

    async def create_context(
        self, session_id: str, cwd: str | None, env: dict[str, str], tenant: str = LOCAL_TENANT
    ) -> CodeContext:
        contexts = self.contexts(session_id, tenant)
        return await contexts.create(WORKSPACE if cwd is None else resolve(cwd), env)

    async def run_code(
        self,
        session_id: str,
        request: RunCodeRequest,
        *,
        on_output: OutputSink | None = None,
        on_display: DisplaySink | None = None,
        call_id: Any = None,
        tenant: str = LOCAL_TENANT,
    ) -> RunCodeResult:
        """One cell, after those queued on its context (not behind shell commands). With
        ``request.stream`` its ``input()`` reads ``send_input``, as a streamed command's
        stdin does; watchers hear it start and end, and see its output."""
        session = self.get(session_id, tenant)
        contexts = session.contexts
        if request.context_id is None:
            context = contexts.default(WORKSPACE)
        else:
            context = contexts.get(request.context_id)
        if on_output is not None:
            on_output = _fanned_out(session, on_output, call_id)
        settings = self._settings
        cell = CellRequest(
            code=request.code,
            timeout=request.timeout_seconds or settings.default_command_timeout_seconds,
            output_limit=settings.output_limit_bytes,
            item_limit=settings.result_item_limit_bytes,
            cell_limit=settings.cell_results_limit_bytes,
        )
        stdin = StdinPipe(settings.max_write_bytes) if request.stream else None
        job = Job(call_id, stdin=stdin, interrupt=functools.partial(contexts.interrupt, context))
        started = time.monotonic()
        async with self._busy(session, job):
            session.touch()
            session.announce(_event(session_id, "command_started", call_id))
            try:
                result = await contexts.run(
                    context,
                    cell,
                    on_output=on_output,
                    on_display=on_display,
                    stdin=stdin,
                    job=job,
                )
            except Exception:  # watchers hear every cell end, an error's too
                spent = round((time.monotonic() - started) * 1000)
                finished = _event(
                    session_id, "command_finished", call_id, success=False, duration_ms=spent
                )
                session.announce(finished)
                raise
        duration_ms = round((time.monotonic() - started) * 1000)
        outcome = _code_result(session_id, context.id, result, duration_ms)
        count_cell(outcome.status, duration_ms / 1000)
        session.announce(
            _event(
                session_id,
                "command_finished",
                call_id,
                success=outcome.status == "ok",
                duration_ms=duration_ms,
            )
        )
        return outcome

    def watch(self, session_id: str, observer: SessionObserver, tenant: str = LOCAL_TENANT) -> None:
        self.get(session_id, tenant).observers.add(observer)

    def unwatch(self, session_id: str, observer: SessionObserver) -> None:
        """A closed session has no watchers left to remove."""
        session = self._sessions.get(session_id)
        if session is not None:
            session.observers.discard(observer)

    def send_input(
        self,
        session_id: str,
        data: bytes,
        eof: bool,
        call_id: Any = None,
        *,
        tenant: str = LOCAL_TENANT,
    ) -> None:
        """To the oldest streamed command or cell of the session whose stdin is still open
        (it may still be queued: the data waits for it); with ``call_id``, to that call's."""
        session = self.get(session_id, tenant)
        stdin = session.jobs.stdin(call_id)
        if stdin is None:
            raise InputClosedError(session_id, call_id)
        limit = self._settings.max_parked_input_bytes
        if sum(pipe.waiting for pipe in session.inputs) + len(data) > limit:
            raise LimitExceededError(
                "parked_input",
                f"more than {limit} bytes of input wait for the session's streamed commands",
            )
        stdin.write(data, eof)
        session.touch()

    async def close(
        self, session_id: str, reason: str = "closed by client", *, tenant: str | None = None
    ) -> None:
        """Close it; with ``tenant``, only if that tenant owns it (None: the server's own
        housekeeping, any session)."""
        session = self._sessions.get(session_id)
        if session is None or tenant not in (None, session.tenant):
            raise SessionNotFoundError(session_id)
        del self._sessions[session_id]
        session.transition(Lifecycle.CLOSING)
        SESSIONS_CLOSED.labels(reason=close_reason(reason)).inc()
        _end_watches(session, reason)
        session.contexts.abandon()
        try:
            await self._sandboxes.remove(session.driver)
        finally:
            session.transition(Lifecycle.CLOSED)
            await self._forget(session)
        logger.info("session {} closed: {}", session_id, reason)

    async def _forget(self, session: Session) -> None:
        session.on_activity = None
        if self._records is not None:
            await self._records.forget(session.id)

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
        SESSIONS_CLOSED.labels(reason="gone").inc()
        _end_watches(session, reason)
        session.contexts.abandon()
        if remember:
            self._terminated[session.id] = (session.tenant, reason)
            while len(self._terminated) > TOMBSTONES:
                self._terminated.popitem(last=False)
        try:
            await self._sandboxes.remove(session.driver)
        finally:
            session.transition(Lifecycle.CLOSED)
            await self._forget(session)
        logger.warning("session {} terminated: {}", session.id, reason)


def _expires_in(session: Session, now: float) -> float:
    """Seconds until the reaper would close the session, were it left alone."""
    left = session.config.max_lifetime_minutes * 60 - session.age_seconds(now)
    if not session.running:
        left = min(left, session.config.idle_timeout_minutes * 60 - session.idle_seconds(now))
    return max(0.0, left)


def _not_started(queued: float) -> CommandOutcome:
    """A command ``session.cancel`` stopped while it waited for its turn."""
    return CommandOutcome(
        success=False,
        result=None,
        error=f"{CANCELLED}: stopped by session.cancel before it started",
        duration_ms=round((time.perf_counter() - queued) * 1000),
    )


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


def _event(session_id: str, event: str, call_id: Any, **fields: Any) -> SessionEvent:
    """``session.event`` of a cell (``command``: ``run_code``)."""
    return SessionEvent.model_validate(
        {"session_id": session_id, "event": event, "request_id": call_id, "command": "run_code"}
        | fields
    )


def _code_result(
    session_id: str, context_id: str, result: CellResult, duration_ms: int
) -> RunCodeResult:
    return RunCodeResult(
        session_id=session_id,
        context_id=context_id,
        status=result.status,
        execution_count=result.execution_count,
        stdout=result.stdout.decode("utf-8", errors="replace"),
        stderr=result.stderr.decode("utf-8", errors="replace"),
        results=[display_data(item) for item in result.displays],
        error=None if result.error is None else CodeError.model_validate(result.error),
        state_preserved=result.state_preserved,
        duration_ms=duration_ms,
        truncated=result.truncated,
    )


def _end_watches(session: Session, reason: str) -> None:
    """The last event a watcher of the session hears."""
    session.announce(SessionEvent(session_id=session.id, event="session_closed", reason=reason))
    session.observers.clear()
