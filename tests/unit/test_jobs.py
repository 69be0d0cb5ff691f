"""A session's jobs: turns taken in arrival order unless cancelled first, never a lock kept
by a job that gave up, ids matched as sent, and where input goes."""

import asyncio

import pytest

from codebeaker.sandbox.driver import StdinPipe
from codebeaker.sessions.jobs import Job, Jobs, JobState, same_id, take_turn

WAIT_SECONDS = 5.0


async def settle() -> None:
    """Let every task that can run, run."""
    for _ in range(5):
        await asyncio.sleep(0)


async def test_turns_are_taken_in_arrival_order() -> None:
    lock = asyncio.Lock()
    order: list[int] = []

    async def job(number: int) -> None:
        assert await take_turn(lock, Job(number))
        try:
            order.append(number)
            await asyncio.sleep(0.001)
        finally:
            lock.release()

    await asyncio.gather(*(job(number) for number in range(6)))
    assert order == list(range(6))


async def test_a_job_cancelled_while_queued_never_starts_and_the_next_one_does() -> None:
    lock = asyncio.Lock()
    await lock.acquire()
    first, second = Job("first"), Job("second")
    waiting_first = asyncio.create_task(take_turn(lock, first))
    waiting_second = asyncio.create_task(take_turn(lock, second))
    await settle()
    first.cancel.set()
    assert await asyncio.wait_for(waiting_first, WAIT_SECONDS) is False
    assert first.cancelled
    assert first.state is JobState.QUEUED  # never running; its owner ends it
    assert not waiting_second.done()
    lock.release()
    assert await asyncio.wait_for(waiting_second, WAIT_SECONDS) is True
    assert second.state is JobState.RUNNING
    assert not second.cancelled
    lock.release()
    assert not lock.locked()


async def test_a_job_cancelled_before_it_asks_does_not_touch_the_lock() -> None:
    lock = asyncio.Lock()
    job = Job(1)
    job.cancel.set()
    assert await take_turn(lock, job) is False
    assert job.cancelled
    assert not lock.locked()


async def test_cancelled_as_the_lock_is_handed_over_it_is_passed_on() -> None:
    lock = asyncio.Lock()
    await lock.acquire()
    job, next_job = Job("a"), Job("b")
    waiting = asyncio.create_task(take_turn(lock, job))
    after = asyncio.create_task(take_turn(lock, next_job))
    await settle()
    lock.release()  # the lock is now the job's…
    job.cancel.set()  # …but it is cancelled before it resumes
    assert await asyncio.wait_for(waiting, WAIT_SECONDS) is False
    assert await asyncio.wait_for(after, WAIT_SECONDS) is True
    lock.release()
    assert not lock.locked()


async def test_a_task_cancelled_while_queued_leaves_no_lock_behind() -> None:
    lock = asyncio.Lock()
    await lock.acquire()
    waiting = asyncio.create_task(take_turn(lock, Job(1)))
    await settle()
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    lock.release()
    await settle()
    assert not lock.locked()
    assert await take_turn(lock, Job(2)) is True


def test_jobs_move_forward_only() -> None:
    job = Job(1)
    job.transition(JobState.RUNNING)
    job.transition(JobState.DONE)
    assert job.ended.is_set()
    with pytest.raises(RuntimeError):
        job.transition(JobState.RUNNING)
    queued = Job(2)
    queued.transition(JobState.DONE)  # a queued job may end without running
    with pytest.raises(RuntimeError):
        Job(3).transition(JobState.QUEUED)


def test_ids_match_as_sent() -> None:
    assert same_id(7, 7)
    assert same_id("7", "7")
    assert not same_id(7, "7")
    assert not same_id(1, True)
    assert not same_id(None, 0)


def test_targets_are_what_runs_or_what_the_id_names() -> None:
    jobs = Jobs()
    shell, copy, cell, queued = Job(1), Job(2, stoppable=False), Job("c"), Job(1)
    for job in (shell, copy, cell):
        job.transition(JobState.RUNNING)
    for job in (shell, copy, cell, queued):
        jobs.add(job)
    assert jobs.targets() == [shell, cell]  # a running file command cannot be stopped
    assert jobs.targets(1) == [shell, queued]  # the same id twice: both
    assert jobs.targets(2) == []
    assert jobs.targets("1") == []
    jobs.remove(queued)
    assert len(jobs) == 3
    assert list(jobs) == [shell, copy, cell]


def test_input_goes_to_the_oldest_open_stdin_or_the_one_named() -> None:
    jobs = Jobs()
    closed, older, newer = StdinPipe(16), StdinPipe(16), StdinPipe(16)
    closed.write(b"", eof=True)
    for call_id, stdin in (("a", closed), ("b", older), ("c", newer)):
        jobs.add(Job(call_id, stdin=stdin))
    jobs.add(Job("d"))
    assert jobs.stdin() is older
    assert jobs.stdin("c") is newer
    assert jobs.stdin("a") is None  # its stdin is closed
    assert jobs.stdin("d") is None  # not streamed
    assert jobs.stdin("nope") is None
