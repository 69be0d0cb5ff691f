"""Shell commands and cells that outlive the tool call that started them.

An MCP client gives a tool call about a minute, so a call answers after the configured wait
with the output so far and a ``process_id``; the job runs on in its session and is polled
(``process_output``), fed (``process_input``) or stopped (``process_cancel``) by that id.
Each poll returns only what is new since the previous one.

Every running job holds a long call in flight on the SDK's one connection to CodeBeaker, which
serves a bounded number of those at once; so jobs are capped (``MAX_RUNNING`` in all,
``MAX_RUNNING_PER_CLIENT`` per MCP client) and a job past the cap is refused, never queued.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Iterable
from typing import Final, Literal

from codebeaker_client import AsyncProcess, AsyncSession, ExecResult, Execution
from codebeaker_client.errors import CodeBeakerError
from codebeaker_client.models.jsonrpc import OutputChunk

__all__ = ["Job", "JobKind", "Jobs", "TooManyJobs", "UnknownJob"]

JobKind = Literal["shell", "execute_code"]
RETENTION_SECONDS: Final = 15 * 60
"""A finished job whose end was never polled is forgotten this long after it ended."""
MAX_JOBS: Final = 256
"""Jobs kept at once; past it the oldest finished ones are forgotten (running ones never:
there are at most ``MAX_RUNNING`` of those)."""
MAX_RUNNING: Final = 48
"""Jobs running at once across the server. Each holds a call in flight on the SDK's connection,
which holds at most 56 long calls (the CodeBeaker server stops reading a connection with 64
in flight); this leaves room for run_code and the other tools' calls."""
MAX_RUNNING_PER_CLIENT: Final = 16
"""Jobs running at once for one MCP client, so that one client cannot take every slot."""


class UnknownJob(LookupError):
    """No job has that id (never started, finished and polled, or forgotten)."""


class TooManyJobs(RuntimeError):
    """Starting a job would exceed ``MAX_RUNNING`` or ``MAX_RUNNING_PER_CLIENT``."""


class Job:
    """One running (or just finished) command or cell, and how much of its output was sent."""

    def __init__(
        self,
        kind: JobKind,
        session: AsyncSession,
        *,
        process: AsyncProcess | None = None,
        context: str | None = None,
        interactive: bool = False,
        client: str | None = None,
    ) -> None:
        self.id = secrets.token_urlsafe(9)
        self.kind: JobKind = kind
        self.session = session
        self.client = client
        """The MCP client that started it (its owner key), when it has an identity."""
        self.process = process
        self.context = context
        self.interactive = interactive
        self.task: asyncio.Task[ExecResult | Execution] | None = None
        self._stdout: list[str] = []
        self._stderr: list[str] = []
        self._sent = [0, 0]
        self.ended_at: float | None = None

    def hear(self, chunk: OutputChunk) -> None:
        """A cell's streamed output (a shell process keeps its own)."""
        (self._stdout if chunk.stream == "stdout" else self._stderr).append(chunk.data)

    def run(self, task: asyncio.Task[ExecResult | Execution]) -> None:
        self.task = task
        task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[ExecResult | Execution]) -> None:
        self.ended_at = time.monotonic()
        if not task.cancelled():
            task.exception()  # retrieved here; raised again to whoever polls

    @property
    def done(self) -> bool:
        return self.task is not None and self.task.done()

    async def wait(self, seconds: float) -> bool:
        """Wait up to ``seconds`` for the job to end (never cancelling it); whether it did."""
        assert self.task is not None
        if not self.task.done():
            await asyncio.wait({self.task}, timeout=max(seconds, 0))
        return self.task.done()

    def result(self) -> ExecResult | Execution:
        """The job's end (raises what the job raised); only once ``done``."""
        assert self.task is not None
        return self.task.result()

    async def stop(self) -> None:
        """Ask the server to stop it: a command's process tree is killed, a cell interrupted."""
        if self.done:
            return
        if self.process is not None:
            await self.session.cancel(self.process.id)
        else:
            await self.session.interrupt(self.context or "default")

    def output_so_far(self) -> tuple[str, str]:
        if self.process is not None:
            partial = self.process.output_so_far()
            return partial.stdout, partial.stderr
        return "".join(self._stdout), "".join(self._stderr)

    def take_new(self, final: tuple[str, str] | None = None) -> tuple[str, str]:
        """Output not sent yet, marked as sent. ``final``: the finished job's whole output,
        which is authoritative (streamed pieces add up to it). All of it counts as sent, even
        a middle the caller then cuts to fit its budget: the next call starts after it."""
        stdout, stderr = final if final is not None else self.output_so_far()
        new = stdout[self._sent[0] :], stderr[self._sent[1] :]
        self._sent = [max(self._sent[0], len(stdout)), max(self._sent[1], len(stderr))]
        return new


class Jobs:
    """The jobs of every client, by id. An id is a capability, like a session id: whoever
    holds it may poll, feed or stop the job."""

    def __init__(
        self, max_running: int = MAX_RUNNING, max_per_client: int = MAX_RUNNING_PER_CLIENT
    ) -> None:
        self._jobs: dict[str, Job] = {}
        self._running: set[Job] = set()
        """Jobs started and not ended, whether or not their id was handed out."""
        self._max_running = max_running
        self._max_per_client = max_per_client
        self._stopping: set[asyncio.Task[None]] = set()

    def start(self, job: Job) -> None:
        """Count ``job``, about to start, as running until it ends; raises ``TooManyJobs``
        (and counts nothing) when that would pass a limit. A job that then fails to start
        is ``discard``ed."""
        self._running = {running for running in self._running if not running.done}
        if len(self._running) >= self._max_running:
            raise TooManyJobs(
                f"{len(self._running)} jobs are running on this MCP server, its limit"
            )
        if job.client is not None:
            mine = sum(running.client == job.client for running in self._running)
            if mine >= self._max_per_client:
                raise TooManyJobs(
                    f"{mine} jobs of this client are running, the limit per client "
                    f"({self._max_running} on the whole server)"
                )
        self._running.add(job)

    def discard(self, job: Job) -> None:
        """``job`` did not start after all: it no longer counts as running."""
        self._running.discard(job)

    def add(self, job: Job) -> None:
        """Hand out ``job``'s id: it may be polled, fed and stopped from now on."""
        self._prune()
        self._jobs[job.id] = job

    def get(self, job_id: str) -> Job:
        job = self._jobs.get(job_id)
        if job is None:
            raise UnknownJob(job_id)
        return job

    def drop(self, job_id: str) -> None:
        """Forget a job whose end was delivered."""
        self._jobs.pop(job_id, None)

    def abandon(self, job: Job) -> None:
        """The call that started ``job`` was cancelled before it could hand out an id: stop
        the job in the background, since no one can poll or stop it any more."""

        async def stop() -> None:
            with contextlib.suppress(CodeBeakerError):
                await job.stop()

        task = asyncio.get_running_loop().create_task(stop())
        self._stopping.add(task)
        task.add_done_callback(self._stopping.discard)

    def forget_sessions(self, session_ids: Iterable[str]) -> None:
        """The sessions were closed: their jobs ended with them."""
        gone = set(session_ids)
        for job in [job for job in self._jobs.values() if job.session.id in gone]:
            self._stop(job)

    def _stop(self, job: Job) -> None:
        self._jobs.pop(job.id, None)
        if job.task is not None and not job.task.done():
            job.task.cancel()

    def _prune(self) -> None:
        now = time.monotonic()
        for job in list(self._jobs.values()):
            if job.ended_at is not None and now - job.ended_at > RETENTION_SECONDS:
                self._jobs.pop(job.id, None)
        if len(self._jobs) >= MAX_JOBS:
            # only finished jobs go: forgetting a running one would leave it running with
            # nobody able to stop it, and at most MAX_RUNNING < MAX_JOBS of them run
            ended = sorted((job for job in self._jobs.values() if job.done), key=_end_time)
            for job in ended[: len(self._jobs) - MAX_JOBS + 1]:
                self._jobs.pop(job.id, None)

    async def close(self) -> None:
        """Stop waiting for every job (at shutdown; the sessions go with their clients)."""
        jobs, self._jobs = list(self._jobs.values()), {}
        tasks: list[asyncio.Task[object]] = [*self._stopping]
        tasks += [job.task for job in jobs if job.task is not None and not job.task.done()]
        for task in tasks:
            task.cancel()
        with contextlib.suppress(BaseException):
            await asyncio.gather(*tasks, return_exceptions=True)


def _end_time(job: Job) -> float:
    return job.ended_at or 0.0
