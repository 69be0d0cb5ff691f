"""The MCP server's bookkeeping, without a server: the limits on running jobs, which jobs are
forgotten, and sessions that must not outlive a cancelled call or a departed client."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest
from codebeaker_client import AsyncCodeBeaker, AsyncSession, ExecResult, Execution
from codebeaker_client.errors import CodeBeakerError
from codebeaker_client.mcp.jobs import MAX_JOBS, Job, Jobs, TooManyJobs
from codebeaker_client.mcp.owners import Owner, create_session


class FakeSession:
    def __init__(self, session_id: str = "S") -> None:
        self.id = session_id
        self.closed = False

    async def close(self) -> None:
        self.closed = True


def session(session_id: str = "S") -> AsyncSession:
    return cast(AsyncSession, FakeSession(session_id))


def job(client: str | None = None) -> Job:
    return Job("shell", session(), client=client)


async def ended() -> ExecResult | Execution:
    return ExecResult("", "", 0, False, False, 1)


async def forever() -> ExecResult | Execution:
    await asyncio.Event().wait()
    raise AssertionError("never set")


async def test_running_jobs_are_capped_in_all_and_per_client() -> None:
    jobs = Jobs(max_running=4, max_per_client=2)
    first, second = job("a"), job("a")
    jobs.start(first)
    jobs.start(second)
    with pytest.raises(TooManyJobs, match="2 jobs of this client"):
        jobs.start(job("a"))
    jobs.start(job("b"))
    jobs.start(job(None))
    with pytest.raises(TooManyJobs, match="4 jobs are running on this MCP server"):
        jobs.start(job("c"))
    jobs.discard(second)  # it failed to start
    jobs.start(job("a"))
    first.run(asyncio.create_task(ended()))
    await first.wait(5)
    jobs.start(job("c"))  # a job that ended no longer counts


async def test_only_finished_jobs_are_forgotten_when_too_many_are_kept() -> None:
    jobs = Jobs()
    running = job()
    running.run(asyncio.create_task(forever()))
    jobs.add(running)
    finished = []
    for _ in range(MAX_JOBS + 5):
        done = job()
        done.run(asyncio.create_task(ended()))
        await done.wait(5)
        jobs.add(done)
        finished.append(done)
    assert jobs.get(running.id) is running, "a running job is never forgotten"
    assert jobs.get(finished[-1].id) is finished[-1]
    with pytest.raises(LookupError):
        jobs.get(finished[0].id)
    await jobs.close()
    assert running.task is not None
    assert running.task.cancelled()


class FakeClient:
    """Creates sessions slowly, so that a call can be cancelled meanwhile."""

    def __init__(self) -> None:
        self.made: list[FakeSession] = []

    async def create_session(self, language: str, **_: Any) -> AsyncSession:
        await asyncio.sleep(0.05)
        self.made.append(FakeSession(f"S{len(self.made)}"))
        return cast(AsyncSession, self.made[-1])


async def test_a_session_made_for_a_cancelled_call_is_closed() -> None:
    client = FakeClient()
    call = asyncio.create_task(create_session(client.create_session("python")))
    await asyncio.sleep(0.01)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    await asyncio.sleep(0.1)
    [made] = client.made
    assert made.closed, "created after all, and closed since nobody knows it"

    owner = Owner("o", cast(AsyncCodeBeaker, client), "python")
    start = asyncio.create_task(owner.default())
    await asyncio.sleep(0.01)
    start.cancel()
    with pytest.raises(asyncio.CancelledError):
        await start
    await asyncio.sleep(0.1)
    assert client.made[1].closed
    assert owner.default_id is None


async def test_a_departed_client_adopts_no_session() -> None:
    owner = Owner("o", cast(AsyncCodeBeaker, FakeClient()), "python")
    await owner.close()
    late = FakeSession()
    with pytest.raises(CodeBeakerError, match="disconnected"):
        await owner.adopt(cast(AsyncSession, late))
    assert late.closed
    assert not owner.owns(late.id)
