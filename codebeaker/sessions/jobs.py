"""A session's calls in flight: each command or cell, queued or running, found by the id of
the call that started it (``session.cancel``, ``session.input`` with ``requestId``).

A job is queued until it holds its lock (the session's for commands, its context's for
cells), running until it ends. ``take_turn`` waits for that lock unless the job is
cancelled first, so a cancelled job that was still queued never starts; a running one is
stopped by whoever runs it (the driver watches ``cancel``; a cell is interrupted).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from codebeaker.sandbox.driver import StdinPipe

__all__ = ["Job", "JobState", "Jobs", "same_id", "take_turn"]


class JobState(Enum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"


_ALLOWED = {
    JobState.QUEUED: {JobState.RUNNING, JobState.DONE},
    JobState.RUNNING: {JobState.DONE},
    JobState.DONE: set(),
}


def same_id(one: Any, other: Any) -> bool:
    """JSON-RPC ids compare as sent: ``7`` and ``"7"`` differ, and so do ``1`` and ``true``."""
    return type(one) is type(other) and one == other


@dataclass(eq=False)
class Job:
    call_id: Any
    """The id of the call that started it; None for one sent without (REST, notifications)."""
    stdin: StdinPipe | None = None
    """Live input, for a streamed command or cell."""
    stoppable: bool = True
    """Whether it can be stopped once running: a shell command or a cell can; a file
    command (a few milliseconds) cannot, only while it is queued."""
    interrupt: Callable[[], Awaitable[bool]] | None = None
    """How a running cell is stopped (its context's interrupt; True if a cell ran there).
    A command needs none: its driver watches ``cancel``."""
    cancel: asyncio.Event = field(default_factory=asyncio.Event)
    """Set by ``session.cancel``."""
    cancelled: bool = False
    """It ended because of ``session.cancel``: never started, or was killed or interrupted."""
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    _state: JobState = JobState.QUEUED

    @property
    def state(self) -> JobState:
        return self._state

    def transition(self, target: JobState) -> None:
        if target not in _ALLOWED[self._state]:
            raise RuntimeError(f"job {self.call_id!r}: {self._state.value} -> {target.value}")
        self._state = target
        if target is JobState.DONE:
            self.ended.set()


async def take_turn(lock: asyncio.Lock, job: Job) -> bool:
    """Wait for ``lock`` (first come, first served) unless the job is cancelled first.

    True: the lock is held and the job is running. False: it was cancelled while queued
    (``job.cancelled`` is set); the lock is not held and the job must not start.
    """
    if not job.cancel.is_set():
        acquiring = asyncio.ensure_future(lock.acquire())
        waiting = asyncio.ensure_future(job.cancel.wait())
        try:
            await asyncio.wait({acquiring, waiting}, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:  # our own task was cancelled: never keep the lock
            waiting.cancel()
            _abandon(lock, acquiring)
            raise
        waiting.cancel()
        if acquiring.done() and not job.cancel.is_set():
            job.transition(JobState.RUNNING)  # no await since the check: cancel sees it
            return True
        _abandon(lock, acquiring)
    job.cancelled = True
    return False


def _abandon(lock: asyncio.Lock, acquiring: asyncio.Future[Any]) -> None:
    """Give up a turn: release the lock if it was got, else stop asking (a waiter
    cancelled before it resumes never takes the lock; asyncio passes it on)."""
    if not acquiring.done():
        acquiring.cancel()
    elif not acquiring.cancelled() and acquiring.exception() is None:
        lock.release()


class Jobs:
    """A session's jobs, in arrival order."""

    def __init__(self) -> None:
        self._jobs: list[Job] = []

    def __iter__(self) -> Iterator[Job]:
        return iter(list(self._jobs))

    def __len__(self) -> int:
        return len(self._jobs)

    def add(self, job: Job) -> None:
        self._jobs.append(job)

    def remove(self, job: Job) -> None:
        self._jobs.remove(job)

    def targets(self, call_id: Any = None) -> list[Job]:
        """What ``session.cancel`` stops: with ``call_id``, the jobs that call started,
        queued or running (a running file command cannot be stopped); without, every
        job running now that can be stopped."""
        if call_id is None:
            return [job for job in self._jobs if job.state is JobState.RUNNING and job.stoppable]
        return [
            job
            for job in self._jobs
            if same_id(job.call_id, call_id)
            and (job.state is JobState.QUEUED or (job.state is JobState.RUNNING and job.stoppable))
        ]

    def stdin(self, call_id: Any = None) -> StdinPipe | None:
        """Where ``session.input`` goes: the oldest open stdin (of the call ``call_id``)."""
        for job in self._jobs:
            if job.stdin is None or job.stdin.closed:
                continue
            if call_id is None or same_id(job.call_id, call_id):
                return job.stdin
        return None
