"""``SandboxService``: the one typed, protocol-neutral API every door adapts.

JSON-RPC methods, REST routes and (later) the browser runner, SDK and MCP server take the
request models of ``codebeaker.api`` and hand them here; what comes back is a result model.
Nothing in this module knows of frames, routes or status codes. Every call about sessions
names its caller's ``Tenant``: a session is found only by the tenant that created it, and
the tenant's quotas (``maxSessions``, ``maxConcurrentRuns``) are kept here.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import shlex
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from codebeaker_client.models import (
    CancelRequest,
    CancelResult,
    CloseResult,
    CommandOutcome,
    CreateSessionRequest,
    ExecuteRequest,
    ExecutionList,
    ExecutionQuery,
    ExecutionRecord,
    Health,
    InputRequest,
    InputResult,
    LanguageInfo,
    LanguageList,
    RunRequest,
    RunResult,
    SessionConfig,
    SessionInfo,
    SessionList,
    SessionRef,
    SessionSummary,
    WatchResult,
)
from codebeaker_client.models.commands import ReadFile, ReadFileResult, WriteFile, WriteFileResult
from codebeaker_client.models.contexts import (
    ContextClosed,
    ContextInfo,
    ContextList,
    ContextRef,
    CreateContextRequest,
    DisplayData,
    InterruptResult,
    RunCodeRequest,
    RunCodeResult,
)
from loguru import logger
from prometheus_client import REGISTRY

from codebeaker import __version__
from codebeaker.api.live import CodeMessage, PendingRunCreated, PendingRunRequest
from codebeaker.api.wire import parse
from codebeaker.exceptions import CommandFailedError, InvalidParamsError, SandboxError
from codebeaker.executions import ExecutionQueue, ExecutionStore
from codebeaker.metrics import ServiceState, StateCollector
from codebeaker.runtimes import RUNTIMES, RuntimeRegistry
from codebeaker.sandbox.docker import DockerBackend
from codebeaker.sandbox.driver import Display, OutputSink
from codebeaker.sessions import (
    InteractiveRun,
    InteractiveRunner,
    LiveSpec,
    OneShotRunner,
    PendingRuns,
    Reaper,
    RunListener,
    RunSpec,
    SandboxFactory,
    SessionManager,
    SessionObserver,
)
from codebeaker.sessions.contexts import display_data
from codebeaker.sessions.records import SessionRecords
from codebeaker.settings import Settings
from codebeaker.tenants import Tenant, TenantRuns

__all__ = ["SandboxService"]

LEFTOVER_SHARE = 0.25
"""Of the shutdown timeout, the part kept for the last clean-up sweep and closing the
engine client, however long the steps before it took."""


class SandboxService:
    """Sessions, one-shot runs and asynchronous executions; started and closed explicitly."""

    def __init__(
        self,
        settings: Settings,
        runtimes: RuntimeRegistry = RUNTIMES,
        sandboxes: SandboxFactory | None = None,
    ) -> None:
        self.settings = settings
        self.runtimes = runtimes
        self._sandboxes = sandboxes or SandboxFactory(
            DockerBackend(settings.docker_url, timeout=settings.docker_timeout_seconds),
            settings,
            runtimes,
        )
        self._store = store = ExecutionStore(settings.database_path)
        self._records = SessionRecords(store)
        self._sessions = SessionManager(self._sandboxes, settings, self._records)
        self._tenant_runs = TenantRuns()
        """Commands, cells and one-shot runs each tenant has queued or running."""
        self._runner = OneShotRunner(self._sandboxes, settings)
        self._executions = ExecutionQueue(store, self._runner, settings, self._spec)
        self._interactive = InteractiveRunner(self._sandboxes, settings)
        self._pending = PendingRuns(settings)
        self._collector = StateCollector(
            ServiceState(
                sessions=lambda: [
                    (session.runtime.name, session.tenant) for session in self._sessions
                ],
                pools=lambda: [
                    (language, pool.ready, pool.size)
                    for language, pool in self._sandboxes.pool.readiness().items()
                ],
                queues=lambda: [
                    ("run", self._runner.queued),
                    ("interactive", self._interactive.queued),
                ],
            )
        )
        self._reaper = Reaper(
            settings.cleanup_interval_seconds,
            self._sessions.reap,
            self._executions.prune,
            self._pending.prune,
        )

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        # The store first: it refuses a second server of this instance before that server
        # removes the first one's containers as "leftovers".
        await self._executions.open()
        await self._records.open()
        adopted = await self._sessions.adopt(self.runtimes)
        if adopted:
            logger.info("adopted {} session(s) of an earlier server", len(adopted))
        await self._remove_leftovers("start-up", keep=adopted)
        await self._executions.resume()
        self._sandboxes.pool.start()
        self._reaper.start()
        REGISTRY.register(self._collector)
        logger.info("CodeBeaker serving instance {!r}", self.settings.instance)

    async def stop_runs(self) -> None:
        """The first step of a shutdown, before the doors close their sockets: no new
        interactive runs; running ones get ``shutdown_grace_seconds`` to finish."""
        await self._interactive.shutdown(self.settings.shutdown_grace_seconds)

    async def close(self) -> None:
        """Within ``shutdown_timeout_seconds`` whatever the engine does: a step that hangs
        is cut short, and what could not be removed is logged (the next start of this
        instance removes it). With ``shutdown=keep`` session containers stay, recorded."""
        self._reaper.shutdown()
        with contextlib.suppress(KeyError):  # never started
            REGISTRY.unregister(self._collector)
        timeout = self.settings.shutdown_timeout_seconds
        deadline = asyncio.get_running_loop().time() + timeout
        kept: list[str] = []
        held = [session.container_id[:12] for session in self._sessions]
        try:
            async with asyncio.timeout_at(deadline - timeout * LEFTOVER_SHARE):
                await self.stop_runs()
                await self._sandboxes.pool.close()
                if self.settings.shutdown == "keep":
                    kept = await self._sessions.detach_all()
                else:
                    await self._sessions.close_all()
                await self._sandboxes.drain()
        except TimeoutError:
            logger.error(
                "shutdown steps cut short after {:g}s; session containers perhaps left: {}",
                timeout * (1 - LEFTOVER_SHARE),
                held or "none",
            )
        finally:  # whatever failed above, nothing of ours but what is kept may outlive us
            await self._records.close()  # a local file: never waits for the engine
            try:
                async with asyncio.timeout_at(deadline):
                    await self._executions.close()  # its runs' containers: swept next
                    await self._remove_leftovers("shutdown", keep=kept)  # cut-short runs too
                    await self._sandboxes.aclose()
            except TimeoutError:
                logger.error(
                    "shutdown cut short after {:g}s: containers of instance {!r} may be left;"
                    " its next start removes them",
                    timeout,
                    self.settings.instance,
                )
                return
            finally:
                await self._store.close()  # its thread, left open, would keep the process up
        if kept:
            logger.info("CodeBeaker stopped; {} session container(s) kept for adoption", len(kept))
        else:
            logger.info("CodeBeaker stopped")  # what it could not remove is logged above

    async def _remove_leftovers(self, when: str, keep: list[str]) -> None:
        try:
            removed = await self._sandboxes.remove_leftovers(keep)
        except SandboxError as exc:
            logger.warning("{} clean-up skipped: {}", when, exc)
            return
        if removed:
            logger.info("{} clean-up removed {} container(s)", when, removed)

    async def health(self) -> Health:
        docker_ok = await self._sandboxes.engine_ok()
        return Health(
            status="ok" if docker_ok else "degraded",
            docker="ok" if docker_ok else "unreachable",
            sessions=len(self._sessions),
            pool=self._sandboxes.pool.readiness(),
            version=__version__,
        )

    def languages(self) -> LanguageList:
        return LanguageList(
            languages=[
                LanguageInfo(
                    name=runtime.name,
                    aliases=list(runtime.aliases),
                    compiled=runtime.compile is not None,
                    source_file=runtime.source_file,
                    sample=runtime.sample,
                )
                for runtime in sorted(self.runtimes, key=lambda runtime: runtime.name)
            ]
        )

    # ------------------------------------------------------------------ sessions

    async def create_session(self, request: CreateSessionRequest, *, tenant: Tenant) -> SessionInfo:
        settings = self.settings
        runtime = self.runtimes.get(request.language)
        config = SessionConfig(
            idle_timeout_minutes=request.idle_timeout_minutes
            or settings.default_idle_timeout_minutes,
            max_lifetime_minutes=request.max_lifetime_minutes
            or settings.default_max_lifetime_minutes,
            memory_limit_mb=request.memory_limit_mb or settings.default_memory_mb,
            cpu_limit=request.cpu_limit or settings.default_cpu_limit,
            env=request.env,
        )
        session = await self._sessions.create(runtime, config, tenant)
        return session.describe()

    def get_session(self, session_id: str, *, tenant: Tenant) -> SessionSummary:
        return self._sessions.get(session_id, tenant.name).summary()

    def list_sessions(self, *, tenant: Tenant) -> SessionList:
        sessions = [session.summary() for session in self._sessions.list(tenant.name)]
        return SessionList(count=len(sessions), sessions=sessions)

    async def close_session(self, session_id: str, *, tenant: Tenant) -> CloseResult:
        await self._sessions.close(session_id, tenant=tenant.name)
        return CloseResult(session_id=session_id)

    async def execute(
        self,
        request: ExecuteRequest,
        on_output: OutputSink | None = None,
        call_id: Any = None,
        *,
        tenant: Tenant,
    ) -> CommandOutcome:
        """Run one command; when ``request.streams``, output goes to ``on_output`` as it
        arrives and the program's stdin stays open for ``send_input``. ``call_id`` names
        the call to the session's watchers."""
        streams = request.streams
        self._sessions.get(request.session_id, tenant.name)  # not found before over quota
        with self._tenant_runs.hold(tenant):
            return await self._sessions.execute(
                request.session_id,
                request.command,
                on_output=on_output if streams else None,
                interactive=streams,
                call_id=call_id,
                tenant=tenant.name,
            )

    def watch(
        self, request: SessionRef, observer: SessionObserver, *, tenant: Tenant
    ) -> WatchResult:
        """``observer`` hears what the session does until it is closed or unwatched;
        watching gives no right to do anything on the session."""
        self._sessions.watch(request.session_id, observer, tenant.name)
        return WatchResult(session_id=request.session_id, watching=True)

    def unwatch(self, request: SessionRef, observer: SessionObserver) -> WatchResult:
        """Stop; a session closed meanwhile has already ended the watch."""
        self._sessions.unwatch(request.session_id, observer)
        return WatchResult(session_id=request.session_id, watching=False)

    def send_input(self, request: InputRequest, *, tenant: Tenant) -> InputResult:
        """To the stdin of the call ``request.request_id`` names, or else of the session's
        oldest streamed command or cell whose stdin is open."""
        data = request.data.encode("utf-8", errors="surrogatepass")
        self._sessions.send_input(
            request.session_id, data, request.eof, request.request_id, tenant=tenant.name
        )
        return InputResult(session_id=request.session_id, bytes=len(data), eof=request.eof)

    async def cancel(self, request: CancelRequest, *, tenant: Tenant) -> CancelResult:
        """Stop the call ``request.request_id`` names (running or queued), or every command
        and cell of the session running now; answers once they ended. Each stopped call
        answers for itself, marked cancelled."""
        cancelled = await self._sessions.cancel(
            request.session_id, request.request_id, tenant=tenant.name
        )
        return CancelResult(session_id=request.session_id, cancelled=cancelled)

    async def write_file(
        self, session_id: str, path: str, data: bytes, *, tenant: Tenant
    ) -> WriteFileResult:
        """Create or replace a file with raw bytes; a refusal raises ``CommandFailedError``."""
        content = base64.b64encode(data).decode("ascii")
        fields = {"type": "write_file", "path": path, "content": content, "encoding": "base64"}
        command = parse(WriteFile, fields, self.settings)  # the path comes from a client
        result = await self._file_command(session_id, command, tenant)
        assert isinstance(result, WriteFileResult)
        return result

    async def read_file(self, session_id: str, path: str, *, tenant: Tenant) -> bytes:
        """A whole file's bytes; one over the read limit is ``file_too_large``, never cut."""
        fields = {"type": "read_file", "path": path, "encoding": "base64"}
        command = parse(ReadFile, fields, self.settings)  # the path comes from a client
        result = await self._file_command(session_id, command, tenant)
        assert isinstance(result, ReadFileResult)
        if result.truncated:
            limit = self.settings.read_file_limit_bytes
            raise CommandFailedError(
                "file_too_large", f"{result.size} bytes is over the {limit} byte read limit"
            )
        return base64.b64decode(result.content)

    async def _file_command(
        self, session_id: str, command: WriteFile | ReadFile, tenant: Tenant
    ) -> WriteFileResult | ReadFileResult:
        outcome = await self.execute(
            ExecuteRequest(session_id=session_id, command=command), tenant=tenant
        )
        if outcome.error is not None:
            raise CommandFailedError.from_message(outcome.error)
        assert isinstance(outcome.result, WriteFileResult | ReadFileResult)
        return outcome.result

    # ------------------------------------------------------------------ code contexts

    async def create_context(self, request: CreateContextRequest, *, tenant: Tenant) -> ContextInfo:
        context = await self._sessions.create_context(
            request.session_id, request.cwd, request.env, tenant.name
        )
        return context.info(request.session_id)

    def list_contexts(self, request: SessionRef, *, tenant: Tenant) -> ContextList:
        contexts = self._sessions.contexts(request.session_id, tenant.name).list()
        infos = [context.info(request.session_id) for context in contexts]
        return ContextList(session_id=request.session_id, count=len(infos), contexts=infos)

    async def restart_context(self, request: ContextRef, *, tenant: Tenant) -> ContextInfo:
        contexts = self._sessions.contexts(request.session_id, tenant.name)
        context = await contexts.restart(contexts.get(request.context_id))
        return context.info(request.session_id)

    async def close_context(self, request: ContextRef, *, tenant: Tenant) -> ContextClosed:
        contexts = self._sessions.contexts(request.session_id, tenant.name)
        await contexts.close(contexts.get(request.context_id))
        return ContextClosed(session_id=request.session_id, context_id=request.context_id)

    async def interrupt(self, request: ContextRef, *, tenant: Tenant) -> InterruptResult:
        """Interrupt the context's running cell (queued ones still run)."""
        contexts = self._sessions.contexts(request.session_id, tenant.name)
        interrupted = await contexts.interrupt(contexts.get(request.context_id))
        return InterruptResult(
            session_id=request.session_id,
            context_id=request.context_id,
            interrupted=interrupted,
        )

    async def run_code(
        self,
        request: RunCodeRequest,
        on_output: OutputSink | None = None,
        on_display: Callable[[DisplayData], None] | None = None,
        call_id: Any = None,
        *,
        tenant: Tenant,
    ) -> RunCodeResult:
        """One cell in a code context; when ``request.stream``, output goes to
        ``on_output`` and each displayed value to ``on_display`` as they come."""
        display_sink = None
        if request.stream and on_display is not None:
            shown = on_display

            def display_sink(display: Display) -> None:
                shown(display_data(display))

        self._sessions.get(request.session_id, tenant.name)  # not found before over quota
        with self._tenant_runs.hold(tenant):
            return await self._sessions.run_code(
                request.session_id,
                request,
                on_output=on_output if request.stream else None,
                on_display=display_sink,
                call_id=call_id,
                tenant=tenant.name,
            )

    # ------------------------------------------------------------------ one-shot runs

    def _spec(self, request: RunRequest) -> RunSpec:
        settings = self.settings
        return RunSpec(
            runtime=self.runtimes.get(request.language),
            code=request.code,
            stdin=request.stdin,
            timeout_seconds=request.timeout_seconds or settings.default_command_timeout_seconds,
            memory_mb=request.memory_limit_mb or settings.default_memory_mb,
        )

    async def run(self, request: RunRequest, *, tenant: Tenant) -> RunResult:
        with self._tenant_runs.hold(tenant):
            return await self._runner.run(self._spec(request))

    async def submit(self, request: RunRequest, *, tenant: Tenant) -> ExecutionRecord:
        """Queue a run; its record can be read (and the run cancelled) by id, by its tenant."""
        return await self._executions.submit(request, tenant.name)

    async def execution(self, execution_id: str, *, tenant: Tenant) -> ExecutionRecord:
        return await self._executions.get(execution_id, tenant.name)

    async def executions(self, query: ExecutionQuery, *, tenant: Tenant) -> ExecutionList:
        return await self._executions.list(query, tenant.name)

    async def cancel_execution(self, execution_id: str, *, tenant: Tenant) -> ExecutionRecord:
        return await self._executions.cancel(execution_id, tenant.name)

    # ------------------------------------------------------------------ interactive runs

    def start_run(self, request: CodeMessage | LiveSpec, listener: RunListener) -> InteractiveRun:
        """Begin an interactive run (framing A's ``code`` message, or a claimed pending
        run); what it prints goes to ``listener``, its end comes from ``wait()``."""
        spec = request if isinstance(request, LiveSpec) else self._live_spec(request)
        return self._interactive.start(spec, listener)

    def create_pending_run(
        self, request: PendingRunRequest, *, tenant: Tenant
    ) -> PendingRunCreated:
        """Framing B: validate now, run when a socket claims the id."""
        stdin = (request.stdin or "").encode("utf-8", errors="surrogatepass")
        spec = LiveSpec.of(self.runtimes.get(request.language), request.code, stdin)
        return PendingRunCreated(session_id=self._pending.add(spec, tenant.name))

    def claim_pending_run(self, run_id: str, *, tenant: Tenant) -> LiveSpec:
        return self._pending.claim(run_id, tenant.name)

    def _live_spec(self, message: CodeMessage) -> LiveSpec:
        runtime = self.runtimes.get(message.language)
        if message.filename is not None:
            runtime = runtime.with_source(message.filename)
        spec = LiveSpec.of(runtime, message.source)
        if message.compile_cmd is not None:
            spec = replace(spec, compile=_words(message.compile_cmd, "compile_cmd"))
        if message.command is not None:
            spec = replace(spec, command=_words(message.command, "command"))
        return spec


def _words(line: str, field: str) -> tuple[str, ...]:
    """Split as a POSIX shell splits words; no shell ever runs the result."""
    try:
        words = shlex.split(line)
    except ValueError as exc:
        raise InvalidParamsError.single([field], f"cannot be split into words: {exc}") from None
    if not words:
        raise InvalidParamsError.single([field], "names no program")
    return tuple(words)
