"""Interactive runs (RUN.md): one program in a fresh sandbox, stdin open, output as it comes.

A run waits for one of ``max_interactive_runs`` slots (at most ``interactive_queue_size``
wait; more are refused at once), takes a pooled sandbox or starts one, writes the source,
compiles if the language needs it, then runs the program with its stdin open. It ends by
itself, by its wall-clock timeout, after ``interactive_idle_seconds`` without input or
output, past the output cap, or when killed (a ``kill`` message, the client going away, the
server shutting down). Its sandbox is removed whatever happened, and its slot is freed only
then, so the slots bound live containers too. Protocol-neutral: the doors turn what the
``RunListener`` hears and the ``RunEnd`` into their own messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

from codebeaker_client.models import CompileResult
from loguru import logger

from codebeaker.api.live import EndReason
from codebeaker.constants import EXIT_KILLED, EXIT_TIMEOUT, WORKSPACE
from codebeaker.exceptions import LimitExceededError, ProgramExitedError, ShuttingDownError
from codebeaker.runtimes import Runtime
from codebeaker.sandbox.driver import Driver, ProcessRequest, StdinPipe
from codebeaker.sessions.programs import compile_program, in_throwaway_sandbox, write_source
from codebeaker.sessions.sandboxes import SandboxFactory
from codebeaker.sessions.slots import RunSlots
from codebeaker.settings import Settings

__all__ = ["InteractiveRun", "InteractiveRunner", "LiveSpec", "RunEnd", "RunListener"]

RETRY_SECONDS = 5.0  # an interactive run lasts seconds to minutes; so does the wait
REPORT_SECONDS = 5.0  # for a door to tell its client that its run was killed at shutdown


@dataclass(frozen=True)
class LiveSpec:
    """One interactive run, resolved: which image, which file, which argv."""

    runtime: Runtime
    """Its ``source_file`` is where the source goes."""
    source: str
    compile: tuple[str, ...] | None
    command: tuple[str, ...]
    stdin: bytes = b""
    """Input already there when the program starts (framing B's ``stdin``)."""

    @classmethod
    def of(cls, runtime: Runtime, source: str, stdin: bytes = b"") -> LiveSpec:
        """The language's own compile and run commands."""
        return cls(runtime, source, runtime.compile, runtime.run, stdin)

    @property
    def filename(self) -> str:
        return self.runtime.source_file


@dataclass(frozen=True)
class RunEnd:
    exit_code: int
    reason: EndReason | None = None
    """Why the server ended it; None when the program (or its compiler) ended by itself."""
    compiled: bool = True
    """False when the compile step failed and the program never ran."""


class RunListener(Protocol):
    """What a door hears while a run goes on; called on the event loop, must not block."""

    def output(self, stream: str, data: bytes) -> None: ...

    def compiled(self, result: CompileResult) -> None: ...


class InteractiveRun:
    """A door's handle on one run: feed input, close stdin, kill, wait for the end."""

    def __init__(
        self,
        spec: LiveSpec,
        listener: RunListener,
        settings: Settings,
        released: Callable[[InteractiveRun], None],
    ) -> None:
        self.spec = spec
        self.listener = listener
        self._input_limit = settings.run_input_limit_bytes
        self._stdin = StdinPipe(settings.run_input_limit_bytes)
        if spec.stdin:
            self._stdin.write(spec.stdin)
        self._sent = len(spec.stdin)
        self._stop: EndReason | None = None
        self._refused = False
        self.started = False
        """True once it holds a slot (it no longer waits in the queue)."""
        self.last_activity = time.monotonic()
        self.task: asyncio.Task[RunEnd] | None = None
        self.released = asyncio.Event()
        """Set by the door once it has told its client how the run ended."""
        self._on_release = released

    @property
    def finished(self) -> bool:
        return self.task is not None and self.task.done()

    def touch(self) -> None:
        self.last_activity = time.monotonic()

    def write(self, data: bytes) -> None:
        """Queue input for the program; refused after it ended, past the run's input cap."""
        if self.finished or self._stop is not None or self._stdin.closed:
            raise ProgramExitedError
        if self._sent + len(data) > self._input_limit:
            raise LimitExceededError(
                "run_input", f"a run takes at most {self._input_limit} bytes of input in all"
            )
        self._stdin.write(data)
        self._sent += len(data)
        self.touch()

    def close_stdin(self) -> None:
        if self.finished or self._stdin.closed:
            raise ProgramExitedError
        self._stdin.write(b"", eof=True)

    def kill(self, reason: EndReason = "killed") -> None:
        """End the run now; its sandbox goes with it. The first reason given wins."""
        if self.task is None or self.task.done():
            return
        if self._stop is None:
            self._stop = reason
        self.task.cancel()

    def refuse(self) -> None:
        """Shutdown: a run still waiting for a slot never starts."""
        self._refused = True
        self.kill()

    async def wait(self) -> RunEnd:
        """The end of the run; raises what kept it from running (no sandbox, a refusal)."""
        assert self.task is not None
        try:
            return await asyncio.shield(self.task)
        except asyncio.CancelledError:
            if not self.task.cancelled():
                raise  # our caller was cancelled, not the run
        if self._refused:
            raise ShuttingDownError
        return RunEnd(EXIT_TIMEOUT if self._stop == "timeout" else EXIT_KILLED, self._stop)

    def stdin(self) -> StdinPipe:
        return self._stdin

    def release(self) -> None:
        """The door is done with the run (a shutdown waits for this, not just the end)."""
        self.released.set()
        self._on_release(self)


class InteractiveRunner:
    def __init__(self, sandboxes: SandboxFactory, settings: Settings) -> None:
        self._sandboxes = sandboxes
        self._settings = settings
        self._slots = RunSlots(settings.max_interactive_runs, "interactive")
        self._runs: set[InteractiveRun] = set()
        self._closing = False

    def __iter__(self) -> Iterator[InteractiveRun]:
        """Runs whose doors have not released them yet."""
        return iter(list(self._runs))

    @property
    def queued(self) -> int:
        """Runs waiting for a slot."""
        return self._slots.queued

    def start(self, spec: LiveSpec, listener: RunListener) -> InteractiveRun:
        """Begin a run (it may first wait for a slot); refused at once when the queue is
        full or the server is stopping."""
        if self._closing:
            raise ShuttingDownError
        settings = self._settings
        # Runs accepted but not holding a slot yet, whether queued or about to take a free
        # slot: clients arriving in the same instant must not all slip past the bound.
        unstarted = sum(1 for run in self._runs if not (run.started or run.finished))
        if unstarted >= self._slots.free + settings.interactive_queue_size:
            raise LimitExceededError(
                "interactive_runs",
                f"{settings.max_interactive_runs} programs run and "
                f"{settings.interactive_queue_size} wait already; try again shortly",
                retry_after=RETRY_SECONDS,
            )
        run = InteractiveRun(spec, listener, settings, released=self._runs.discard)
        run.task = asyncio.create_task(self._run(run))
        self._runs.add(run)
        return run

    async def shutdown(self, grace: float) -> None:
        """Refuse new runs and queued ones; give running ones ``grace`` seconds, then kill.
        Returns once every door has told its client how its run ended (or a moment more)."""
        self._closing = True
        for run in self:
            if not run.started:
                run.refuse()
        if runs := list(self):
            logger.info("waiting up to {:g}s for {} interactive run(s)", grace, len(runs))
            await self._released(runs, grace)
        for run in self:
            run.kill()
        await self._released(list(self), REPORT_SECONDS)

    @staticmethod
    async def _released(runs: list[InteractiveRun], timeout: float) -> None:
        if runs:
            waits = [asyncio.create_task(run.released.wait()) for run in runs]
            _, pending = await asyncio.wait(waits, timeout=timeout)
            for wait in pending:
                wait.cancel()

    async def _run(self, run: InteractiveRun) -> RunEnd:
        await self._slots.acquire(urgent=True)
        run.started = True
        settings = self._settings
        return await in_throwaway_sandbox(
            self._sandboxes,
            self._slots,
            run.spec.runtime,
            lambda driver: self._compile_and_run(driver, run),
            kind="interactive",
            owner=f"live-{secrets.token_hex(8)}",
            memory_mb=settings.default_memory_mb,
            cpu_limit=settings.default_cpu_limit,
        )

    async def _compile_and_run(self, driver: Driver, run: InteractiveRun) -> RunEnd:
        spec, settings = run.spec, self._settings
        await write_source(driver, spec.filename, spec.source)
        if spec.compile is not None:
            compiled = await compile_program(
                driver, spec.compile, settings.interactive_timeout_seconds, settings
            )
            run.listener.compiled(compiled)
            if compiled.exit_code != 0:
                return RunEnd(compiled.exit_code, compiled=False)
        run.touch()

        def on_output(stream: str, data: bytes) -> None:
            run.touch()
            run.listener.output(stream, data)

        request = ProcessRequest(
            spec.command,
            WORKSPACE,
            settings.interactive_timeout_seconds,
            settings.output_limit_bytes,
        )
        program = asyncio.create_task(driver.run(request, on_output=on_output, stdin=run.stdin()))
        try:
            while not program.done():
                left = run.last_activity + settings.interactive_idle_seconds - time.monotonic()
                if left <= 0:
                    run.kill("timeout")  # cancels this task: the sandbox is removed
                    await asyncio.sleep(0)
                await asyncio.wait({program}, timeout=max(left, 0.01))
        finally:
            if not program.done():
                program.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await program
        result = program.result()
        if result.timed_out:
            return RunEnd(EXIT_TIMEOUT, "timeout")
        if result.truncated:
            return RunEnd(result.exit_code, "output_limit")
        return RunEnd(result.exit_code)
