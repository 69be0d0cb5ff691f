"""``execution.run``: write, compile (if the language needs it) and run in a throwaway container.

The reply goes out as soon as the result is final; the container is removed in the
background (``SandboxFactory.discard``), which the server waits for at shutdown.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from codebeaker.api import CompileResult, RunResult
from codebeaker.commands.shell import shell_result
from codebeaker.constants import WORKSPACE
from codebeaker.exceptions import LimitExceededError
from codebeaker.runtimes import Runtime
from codebeaker.sandbox.driver import Driver, ProcessRequest
from codebeaker.sessions.sandboxes import SandboxFactory
from codebeaker.settings import Settings

__all__ = ["OneShotRunner", "RunSpec"]

MIN_COMPILE_SECONDS = 60.0  # a cold Go or Mono compile is slower than most programs it builds
QUEUE_RETRY_SECONDS = 1.0  # what a refused run is told to wait: a slot frees up about that fast

OnStart = Callable[[], Awaitable[bool]]
"""Called once a slot is held, before the sandbox starts; False means "do not run"."""


@dataclass(frozen=True)
class RunSpec:
    """One run, its defaults resolved."""

    runtime: Runtime
    code: str
    stdin: str | None
    timeout_seconds: float
    memory_mb: int


class NotStartedError(Exception):
    """``on_start`` declined: the run was cancelled while it waited."""


class OneShotRunner:
    """At most ``max_concurrent_runs`` at once; ``run_queue_size`` more may wait their turn
    (asynchronous executions wait in their own durable queue and are not counted there)."""

    def __init__(self, sandboxes: SandboxFactory, settings: Settings) -> None:
        self._sandboxes = sandboxes
        self._settings = settings
        self._slots = asyncio.Semaphore(settings.max_concurrent_runs)
        self._waiting = 0

    @property
    def waiting(self) -> int:
        return self._waiting

    async def run(self, spec: RunSpec, *, bounded: bool = True) -> RunResult:
        """Wait for a slot (refused when ``bounded`` and the queue is full), then run."""
        async with self._slot(bounded):
            return await self._run(spec)

    async def run_when_started(self, spec: RunSpec, on_start: OnStart) -> RunResult:
        """For queued executions: ``on_start`` is told when the slot is held."""
        async with self._slot(bounded=False):
            if not await on_start():
                raise NotStartedError
            return await self._run(spec)

    @asynccontextmanager
    async def _slot(self, bounded: bool) -> AsyncIterator[None]:
        if bounded and self._slots.locked() and self._waiting >= self._settings.run_queue_size:
            raise LimitExceededError(
                "runs",
                "too many execution.run requests are waiting; try again shortly",
                retry_after=QUEUE_RETRY_SECONDS,
            )
        self._waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self._waiting -= 1
        try:
            yield
        finally:
            self._slots.release()

    async def _run(self, spec: RunSpec) -> RunResult:
        started = time.perf_counter()
        driver = await self._sandboxes.start(
            spec.runtime,
            kind="run",
            owner=f"run-{secrets.token_hex(8)}",
            memory_mb=spec.memory_mb,
            cpu_limit=self._settings.default_cpu_limit,
        )
        try:
            result = await self._compile_and_run(driver, spec)
        finally:
            self._sandboxes.discard(driver)  # removed in the background: the reply need not wait
        duration_ms = round((time.perf_counter() - started) * 1000)
        return result.model_copy(update={"duration_ms": duration_ms})

    async def _compile_and_run(self, driver: Driver, spec: RunSpec) -> RunResult:
        runtime, limit = spec.runtime, self._settings.output_limit_bytes
        await driver.file_op(
            "write",
            path=f"{WORKSPACE}/{runtime.source_file}",
            content=base64.b64encode(spec.code.encode("utf-8", errors="surrogatepass")).decode(),
            mode="Create",
        )
        compiled: CompileResult | None = None
        if runtime.compile is not None:
            compile_timeout = min(
                max(spec.timeout_seconds, MIN_COMPILE_SECONDS),
                self._settings.max_command_timeout_seconds,
            )
            began = time.perf_counter()
            process = await driver.run(
                ProcessRequest(runtime.compile, WORKSPACE, compile_timeout, limit)
            )
            output = shell_result(process)
            compiled = CompileResult(
                stdout=output.stdout,
                stderr=output.stderr,
                exit_code=output.exit_code,
                duration_ms=round((time.perf_counter() - began) * 1000),
            )
            if process.exit_code != 0:
                return RunResult(
                    stdout="",
                    stderr="",
                    exit_code=process.exit_code,
                    timed_out=False,
                    truncated=False,
                    duration_ms=0,
                    compile=compiled,
                )
        stdin = spec.stdin.encode("utf-8", errors="surrogatepass") if spec.stdin else None
        process = await driver.run(
            ProcessRequest(runtime.run, WORKSPACE, spec.timeout_seconds, limit, stdin=stdin)
        )
        return RunResult(**shell_result(process).model_dump(), duration_ms=0, compile=compiled)
