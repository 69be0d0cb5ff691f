"""A session's code contexts: long-lived interpreters in its container, by id.

Cells of one context run one at a time, in arrival order (its lock); contexts, and the
session's shell commands, run beside each other. A cell cancelled while it waits for its
turn never runs (``jobs.take_turn``). The interpreter lives in the sandbox
(the agent's kernels); here is what the server must remember to start one again: its
working directory and environment. A context the sandbox lost (its agent was started
again) is started anew on its next cell, and that cell says the state is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from codebeaker_client.models.contexts import ContextInfo, DisplayData
from loguru import logger

from codebeaker.exceptions import CommandFailedError, ContextNotFoundError, LimitExceededError
from codebeaker.sandbox.driver import (
    CellRequest,
    CellResult,
    Display,
    DisplaySink,
    Driver,
    OutputSink,
    StdinPipe,
)
from codebeaker.sessions.jobs import Job, take_turn
from codebeaker.settings import Settings

__all__ = ["DEFAULT_CONTEXT", "CodeContext", "ContextRegistry", "display_data", "not_run"]

DEFAULT_CONTEXT = "default"
MISSING = "context_not_found"


def not_run() -> CellResult:
    """A cell ``session.cancel`` stopped before it reached its interpreter."""
    return CellResult(
        status="interrupted",
        execution_count=0,
        stdout=b"",
        stderr=b"",
        displays=[],
        error={
            "name": "Cancelled",
            "value": "session.cancel stopped the cell before it ran",
            "traceback": "",
        },
        state_preserved=True,
        truncated=False,
    )


def display_data(display: Display) -> DisplayData:
    """A displayed value as every door shows it."""
    return DisplayData(kind=display.kind, data=display.data, truncated=display.truncated)


@dataclass
class CodeContext:
    id: str
    cwd: str
    env: Mapping[str, str]
    marker: str = field(default_factory=lambda: f"ctx-{secrets.token_hex(8)}")
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    execution_count: int = 0
    pid: int = 0
    waiting: int = 0
    """Cells running or queued."""
    closed: bool = False
    starting: asyncio.Task[None] | None = None

    def info(self, session_id: str) -> ContextInfo:
        return ContextInfo(
            session_id=session_id,
            context_id=self.id,
            language="python",
            cwd=self.cwd,
            created_at=self.created_at,
            execution_count=self.execution_count,
            busy=self.waiting > 0,
            pid=self.pid,
        )


class ContextRegistry:
    def __init__(
        self, session_id: str, driver: Driver, settings: Settings, env: Mapping[str, str]
    ) -> None:
        self._session_id = session_id
        self._driver = driver
        self._settings = settings
        self._env = env
        self._contexts: dict[str, CodeContext] = {}

    def __len__(self) -> int:
        return len(self._contexts)

    def list(self) -> list[CodeContext]:
        return sorted(self._contexts.values(), key=lambda context: context.created_at)

    def get(self, context_id: str) -> CodeContext:
        context = self._contexts.get(context_id)
        if context is None:
            raise ContextNotFoundError(self._session_id, context_id)
        return context

    async def create(self, cwd: str, env: Mapping[str, str]) -> CodeContext:
        context = self._add(secrets.token_urlsafe(9), cwd, env)
        try:
            await self._start(context)
        except BaseException:
            self._contexts.pop(context.id, None)
            raise
        return context

    def default(self, cwd: str) -> CodeContext:
        """The default context; if the session has none (any more), one starting in the
        background (the session's creation calls this, so its first cell finds it)."""
        context = self._contexts.get(DEFAULT_CONTEXT)
        if context is None:
            context = self._add(DEFAULT_CONTEXT, cwd, {})
            context.starting = asyncio.create_task(self._start(context))
            # a start nobody waits for (the session closed first) must not log as lost
            context.starting.add_done_callback(lambda task: task.cancelled() or task.exception())
        return context

    def _add(self, context_id: str, cwd: str, env: Mapping[str, str]) -> CodeContext:
        limit = self._settings.max_contexts_per_session
        if len(self._contexts) >= limit:
            raise LimitExceededError(
                "contexts", f"session {self._session_id} holds its maximum of {limit} contexts"
            )
        context = CodeContext(context_id, cwd, {**self._env, **env})
        self._contexts[context_id] = context
        return context

    async def _start(self, context: CodeContext) -> None:
        context.pid = await self._driver.start_context(
            context.id,
            context.marker,
            context.cwd,
            context.env,
            self._settings.interrupt_grace_seconds,
        )
        context.execution_count = 0

    async def _started(self, context: CodeContext) -> None:
        """Wait for a background start; one that failed takes the context away."""
        starting, context.starting = context.starting, None
        if starting is None:
            return
        try:
            await starting
        except BaseException:
            self._contexts.pop(context.id, None)
            context.closed = True
            raise

    async def run(
        self,
        context: CodeContext,
        request: CellRequest,
        *,
        on_output: OutputSink | None = None,
        on_display: DisplaySink | None = None,
        stdin: StdinPipe | None = None,
        job: Job | None = None,
    ) -> CellResult:
        """Run one cell after those queued on its context. ``job`` (the session's record of
        it) may be cancelled: while it waits for its turn or for the interpreter to start,
        the cell does not run (``not_run``)."""
        job = job or Job(None)
        context.waiting += 1
        try:
            if not await take_turn(context.lock, job):
                return not_run()
            try:
                await self._started(context)
                if context.closed:  # closed while this cell waited
                    raise ContextNotFoundError(self._session_id, context.id)
                if job.cancel.is_set():  # cancelled while the interpreter started
                    job.cancelled = True
                    return not_run()
                run = functools.partial(
                    self._driver.run_cell,
                    context.id,
                    request,
                    on_output=on_output,
                    on_display=on_display,
                    stdin=stdin,
                )
                result = await run()
                if result is None and context.closed:  # closed while this cell ran
                    raise ContextNotFoundError(self._session_id, context.id)
                if result is None:  # the sandbox lost it: a new interpreter, state gone
                    await self._start(context)
                    result = await run()
                    if result is None:
                        raise ContextNotFoundError(self._session_id, context.id)
                    result = replace(result, state_preserved=False)
                context.execution_count = result.execution_count
                return result
            finally:
                context.lock.release()
        finally:
            context.waiting -= 1

    async def interrupt(self, context: CodeContext) -> bool:
        reply = await self._op(context, "interrupt")
        return bool(reply.get("interrupted"))

    async def restart(self, context: CodeContext) -> CodeContext:
        await self._started(context)
        try:
            reply = await self._driver.context_op("restart", context.id)
            context.pid = int(reply.get("pid", 0))
        except CommandFailedError as exc:
            if exc.kind != MISSING:
                raise
            await self._start(context)  # the sandbox had lost it: start it afresh
        context.execution_count = 0
        return context

    async def close(self, context: CodeContext) -> None:
        self._contexts.pop(context.id, None)
        context.closed = True
        if context.starting is not None:
            with contextlib.suppress(Exception):
                await self._started(context)
        try:
            await self._driver.context_op("stop", context.id)
        except CommandFailedError as exc:
            if exc.kind != MISSING:
                logger.warning("context {} did not stop cleanly: {}", context.id, exc)

    async def _op(self, context: CodeContext, op: str) -> dict[str, object]:
        try:
            return await self._driver.context_op(op, context.id)
        except CommandFailedError as exc:
            if exc.kind == MISSING:  # the sandbox lost it: nothing runs there to act on
                return {}
            raise

    def abandon(self) -> None:
        """The session ends: background starts stop; the container takes the rest."""
        for context in self._contexts.values():
            context.closed = True
            if context.starting is not None:
                context.starting.cancel()
        self._contexts.clear()
