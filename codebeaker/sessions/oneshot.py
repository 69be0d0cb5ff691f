"""``execution.run``: write, compile (if the language needs it) and run in a throwaway container.

The reply goes out as soon as the result is final; the container is removed in the
background (``SandboxFactory.discard``), and the run's slot is freed only once it is gone,
so ``max_concurrent_runs`` bounds live run containers too. A cancelled run removes its
container before the cancellation completes.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from codebeaker_client.models import CompileResult, RunResult

from codebeaker.commands.shell import shell_result
from codebeaker.constants import WORKSPACE
from codebeaker.exceptions import LimitExceededError
from codebeaker.runtimes import Runtime
from codebeaker.sandbox.driver import Driver, ProcessRequest
from codebeaker.sessions.programs import compile_program, in_throwaway_sandbox, write_source
from codebeaker.sessions.sandboxes import SandboxFactory
from codebeaker.sessions.slots import RunSlots
from codebeaker.settings import Settings

__all__ = ["OneShotRunner", "RunSpec"]

RUN_RETRY_SECONDS = 1.0  # what a refused run is told to wait: a slot frees up about that fast


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
    """At most ``max_concurrent_runs`` at once. Synchronous runs wait first, at most
    ``run_queue_size`` of them; asynchronous executions wait behind them in their own
    durable queue, which bounds itself."""

    def __init__(self, sandboxes: SandboxFactory, settings: Settings) -> None:
        self._sandboxes = sandboxes
        self._settings = settings
        self._slots = RunSlots(settings.max_concurrent_runs, "run")

    @property
    def queued(self) -> int:
        """Runs waiting for a slot: synchronous ones and queued executions."""
        return self._slots.queued

    async def run(self, spec: RunSpec) -> RunResult:
        """Wait for a slot (refused when the queue of synchronous runs is full), then run."""
        if self._slots.busy and self._slots.waiting(urgent=True) >= self._settings.run_queue_size:
            raise LimitExceededError(
                "runs",
                "too many execution.run requests are waiting; try again shortly",
                retry_after=RUN_RETRY_SECONDS,
            )
        await self._slots.acquire(urgent=True)
        return await self._run(spec)

    async def run_when_started(self, spec: Callable[[], Awaitable[RunSpec | None]]) -> RunResult:
        """For queued executions: once a slot is held, ``spec`` says what to run (it is
        loaded only then), or None for "not any more" (cancelled while it waited)."""
        await self._slots.acquire(urgent=False)
        try:
            resolved = await spec()
        except BaseException:
            self._slots.release()
            raise
        if resolved is None:
            self._slots.release()
            raise NotStartedError
        return await self._run(resolved)

    async def _run(self, spec: RunSpec) -> RunResult:
        """Run holding a slot the caller acquired; the slot is released after removal."""
        started = time.perf_counter()
        result = await in_throwaway_sandbox(
            self._sandboxes,
            self._slots,
            spec.runtime,
            lambda driver: self._compile_and_run(driver, spec),
            kind="run",
            owner=f"run-{secrets.token_hex(8)}",
            memory_mb=spec.memory_mb,
            cpu_limit=self._settings.default_cpu_limit,
        )
        duration_ms = round((time.perf_counter() - started) * 1000)
        return result.model_copy(update={"duration_ms": duration_ms})

    async def _compile_and_run(self, driver: Driver, spec: RunSpec) -> RunResult:
        runtime, settings = spec.runtime, self._settings
        await write_source(driver, runtime.source_file, spec.code)
        compiled: CompileResult | None = None
        if runtime.compile is not None:
            timeout = spec.timeout_seconds
            compiled = await compile_program(driver, runtime.compile, timeout, settings)
            if compiled.exit_code != 0:
                return RunResult(
                    stdout="",
                    stderr="",
                    exit_code=compiled.exit_code,
                    timed_out=False,
                    truncated=False,
                    duration_ms=0,
                    compile=compiled,
                )
        stdin = spec.stdin.encode("utf-8", errors="surrogatepass") if spec.stdin else None
        request = ProcessRequest(
            runtime.run, WORKSPACE, spec.timeout_seconds, settings.output_limit_bytes, stdin=stdin
        )
        process = await driver.run(request)
        return RunResult(**shell_result(process).model_dump(), duration_ms=0, compile=compiled)
