"""One-shot runs over fake sandboxes: slots, their order, and what holds a slot how long."""

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from codebeaker_client.models import RunResult

from codebeaker.constants import WORKSPACE
from codebeaker.exceptions import (
    ContainerGoneError,
    LimitExceededError,
    SandboxUnavailableError,
)
from codebeaker.runtimes import Runtime
from codebeaker.sessions import NotStartedError, OneShotRunner, RunSpec
from codebeaker.settings import Settings
from tests.unit.fakes import FakeDriver, FakeSandboxes

SLOW = Runtime(name="slow", aliases=(), source_file="main.x", run=("sleep", "0.2"))
BRIEF = Runtime(name="brief", aliases=(), source_file="main.x", run=("sleep", "0.05"))
ENDLESS = Runtime(name="endless", aliases=(), source_file="main.x", run=("sleep", "60"))
ECHO = Runtime(name="echo", aliases=(), source_file="main.x", run=("echo", "hi"))
COMPILED = Runtime(
    name="compiled", aliases=(), source_file="m.c", compile=("false",), run=("echo", "ran")
)
WAIT_SECONDS = 5.0


def spec(runtime: Runtime, code: str = "x") -> RunSpec:
    return RunSpec(runtime=runtime, code=code, stdin=None, timeout_seconds=5, memory_mb=128)


def loader(
    found: RunSpec | None, calls: list[str] | None = None
) -> Callable[[], Awaitable[RunSpec | None]]:
    """What the execution queue hands ``run_when_started``: loads the spec when called."""

    async def load() -> RunSpec | None:
        if calls is not None:
            calls.append("x" if found is None else found.code)
        return found

    return load


def started_codes(sandboxes: FakeSandboxes) -> list[str]:
    """The code of every run, in the order their sandboxes started."""
    return [driver.files[f"{WORKSPACE}/main.x"].decode() for driver in sandboxes.drivers]


async def settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


async def until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(WAIT_SECONDS):
        while not condition():
            await asyncio.sleep(0.002)


async def test_runs_beyond_the_queue_are_refused_and_none_is_left_behind() -> None:
    settings = Settings(max_concurrent_runs=1, run_queue_size=1)
    sandboxes = FakeSandboxes(settings)
    runner = OneShotRunner(sandboxes, settings)
    first = asyncio.create_task(runner.run(spec(SLOW)))
    await asyncio.sleep(0.05)
    second = asyncio.create_task(runner.run(spec(SLOW)))  # waits for the slot
    await asyncio.sleep(0.05)
    with pytest.raises(LimitExceededError) as caught:
        await runner.run(spec(SLOW))
    assert caught.value.limit == "runs"
    assert caught.value.retry_after is not None
    results = await asyncio.gather(first, second)
    assert [r.exit_code for r in results] == [0, 0]
    await sandboxes.drain()  # containers are removed in the background
    assert len(sandboxes.drivers) == 2
    assert sorted(sandboxes.removed) == sorted(d.container_id for d in sandboxes.drivers)


async def test_a_failed_compile_skips_the_run() -> None:
    settings = Settings()
    sandboxes = FakeSandboxes(settings)
    result = await OneShotRunner(sandboxes, settings).run(spec(COMPILED))
    assert result.compile is not None
    assert result.compile.exit_code == 1
    assert (result.exit_code, result.stdout, result.timed_out) == (1, "", False)
    assert [call[0] for call in sandboxes.drivers[0].calls] == ["write", "false"]
    assert result.to_wire()["compile"]["exitCode"] == 1


async def test_an_interpreted_run_has_no_compile_on_the_wire() -> None:
    settings = Settings()
    sandboxes = FakeSandboxes(settings)
    result = await OneShotRunner(sandboxes, settings).run(spec(ECHO))
    assert isinstance(result, RunResult)
    assert (result.stdout, result.exit_code, result.compile) == ("echo hi", 0, None)
    assert "compile" not in result.to_wire()
    assert result.duration_ms >= 0
    await sandboxes.drain()
    assert sandboxes.removed == [sandboxes.drivers[0].container_id]


async def test_a_declined_start_runs_nothing_and_frees_the_slot() -> None:
    settings = Settings(max_concurrent_runs=1)
    sandboxes = FakeSandboxes(settings)
    runner = OneShotRunner(sandboxes, settings)
    with pytest.raises(NotStartedError):
        await asyncio.wait_for(runner.run_when_started(loader(None)), WAIT_SECONDS)
    assert sandboxes.drivers == []
    calls: list[str] = []
    result = await asyncio.wait_for(
        runner.run_when_started(loader(spec(ECHO, "accepted"), calls)), WAIT_SECONDS
    )
    assert (calls, result.stdout) == (["accepted"], "echo hi")
    await sandboxes.drain()


async def test_a_spec_that_cannot_be_loaded_fails_the_run_and_frees_the_slot() -> None:
    settings = Settings(max_concurrent_runs=1)
    sandboxes = FakeSandboxes(settings)
    runner = OneShotRunner(sandboxes, settings)

    async def broken() -> RunSpec | None:
        raise ValueError("not under today's settings")

    with pytest.raises(ValueError, match="today"):
        await asyncio.wait_for(runner.run_when_started(broken), WAIT_SECONDS)
    assert sandboxes.drivers == []
    result = await asyncio.wait_for(runner.run(spec(ECHO)), WAIT_SECONDS)
    assert result.exit_code == 0
    await sandboxes.drain()


async def one_slot_held() -> tuple[FakeSandboxes, OneShotRunner, asyncio.Task[RunResult]]:
    """A runner with one slot, held by a run still going ("holder")."""
    settings = Settings(max_concurrent_runs=1)
    sandboxes = FakeSandboxes(settings)
    runner = OneShotRunner(sandboxes, settings)
    holder = asyncio.create_task(runner.run(spec(BRIEF, "holder")))
    await until(lambda: len(sandboxes.drivers) == 1)
    return sandboxes, runner, holder


async def test_the_spec_is_loaded_only_once_the_slot_is_held() -> None:
    sandboxes, runner, holder = await one_slot_held()
    calls: list[str] = []
    queued = asyncio.create_task(runner.run_when_started(loader(spec(ECHO, "queued"), calls)))
    await settle()
    assert calls == []  # the slot is taken: nothing is loaded yet
    await asyncio.wait_for(asyncio.gather(holder, queued), WAIT_SECONDS)
    assert calls == ["queued"]
    assert started_codes(sandboxes) == ["holder", "queued"]
    await sandboxes.drain()


async def test_a_synchronous_run_is_not_refused_while_executions_wait_and_goes_first() -> None:
    """Queued executions do not count against ``run_queue_size`` and never go first."""
    settings = Settings(max_concurrent_runs=1, run_queue_size=1)
    sandboxes = FakeSandboxes(settings)
    runner = OneShotRunner(sandboxes, settings)
    holder = asyncio.create_task(runner.run_when_started(loader(spec(BRIEF, "holder"))))
    await until(lambda: len(sandboxes.drivers) == 1)
    executions = []
    for index in range(5):
        executions.append(
            asyncio.create_task(runner.run_when_started(loader(spec(ECHO, f"async-{index}"))))
        )
        await settle()
    synchronous = asyncio.create_task(runner.run(spec(ECHO, "sync")))
    await settle()
    assert not synchronous.done()  # waiting, not refused
    with pytest.raises(LimitExceededError) as caught:  # the one synchronous place is taken
        await runner.run(spec(ECHO, "refused"))
    assert (caught.value.limit, caught.value.retry_after) == ("runs", 1.0)
    results = await asyncio.wait_for(asyncio.gather(holder, synchronous, *executions), WAIT_SECONDS)
    assert all(result.exit_code == 0 for result in results)
    assert started_codes(sandboxes) == ["holder", "sync", *(f"async-{i}" for i in range(5))]
    await sandboxes.drain()
    assert sorted(sandboxes.removed) == sorted(d.container_id for d in sandboxes.drivers)


async def test_the_slot_is_held_until_the_container_is_removed() -> None:
    settings = Settings(max_concurrent_runs=1)
    sandboxes = FakeSandboxes(settings)
    runner = OneShotRunner(sandboxes, settings)
    sandboxes.removals.clear()  # every removal hangs until the test lets it finish
    first = await asyncio.wait_for(runner.run(spec(ECHO, "first")), WAIT_SECONDS)
    assert first.exit_code == 0  # answered before its container is gone
    calls: list[str] = []
    waiting = [
        asyncio.create_task(runner.run(spec(ECHO, "second"))),
        asyncio.create_task(runner.run_when_started(loader(spec(ECHO, "third"), calls))),
    ]
    await until(lambda: len(sandboxes.removing) == 1)
    await asyncio.sleep(0.05)
    assert started_codes(sandboxes) == ["first"]  # the slot is still the first run's
    assert (sandboxes.removed, calls) == ([], [])
    sandboxes.removals.set()
    await asyncio.wait_for(asyncio.gather(*waiting), WAIT_SECONDS)
    assert started_codes(sandboxes) == ["first", "second", "third"]
    await sandboxes.drain()
    assert len(sandboxes.removed) == 3


class VanishingSandboxes(FakeSandboxes):
    """Its first container is gone before the run can write its source."""

    def new_driver(self, container_id: str) -> FakeDriver:
        driver = super().new_driver(container_id)
        driver.gone = not self.drivers
        return driver


async def test_a_failed_run_also_frees_its_slot_only_after_removal() -> None:
    settings = Settings(max_concurrent_runs=1)
    sandboxes = VanishingSandboxes(settings)
    runner = OneShotRunner(sandboxes, settings)
    sandboxes.removals.clear()
    with pytest.raises(ContainerGoneError):
        await asyncio.wait_for(runner.run(spec(ECHO, "lost")), WAIT_SECONDS)
    behind = asyncio.create_task(runner.run(spec(ECHO, "behind")))
    await until(lambda: len(sandboxes.removing) == 1)
    await asyncio.sleep(0.05)
    assert (len(sandboxes.drivers), behind.done()) == (1, False)
    sandboxes.removals.set()
    assert (await asyncio.wait_for(behind, WAIT_SECONDS)).exit_code == 0
    await sandboxes.drain()
    assert len(sandboxes.removed) == 2


async def test_a_cancelled_run_removes_its_container_before_the_cancellation_completes() -> None:
    settings = Settings(max_concurrent_runs=1)
    sandboxes = FakeSandboxes(settings)
    runner = OneShotRunner(sandboxes, settings)
    task = asyncio.create_task(runner.run(spec(ENDLESS, "cancelled")))
    await until(lambda: bool(sandboxes.drivers) and len(sandboxes.drivers[0].calls) == 2)
    behind = asyncio.create_task(runner.run(spec(ECHO, "behind")))
    await settle()
    sandboxes.removals.clear()
    task.cancel()
    await until(lambda: sandboxes.removing == [sandboxes.drivers[0].container_id])
    await asyncio.sleep(0.05)
    assert not task.done()  # the cancellation waits for the removal
    assert started_codes(sandboxes) == ["cancelled"]  # and so does the slot
    sandboxes.removals.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert sandboxes.removed == [sandboxes.drivers[0].container_id]  # not in the background
    assert sandboxes.drivers[0].closed
    assert (await asyncio.wait_for(behind, WAIT_SECONDS)).stdout == "echo hi"
    await sandboxes.drain()


async def test_a_run_whose_sandbox_cannot_start_frees_its_slot() -> None:
    settings = Settings(max_concurrent_runs=1, run_queue_size=0)
    sandboxes = FakeSandboxes(settings)
    runner = OneShotRunner(sandboxes, settings)
    sandboxes.start_failure = SandboxUnavailableError("engine down")
    for _ in range(3):  # with the slot lost, the second would wait (or be refused) forever
        with pytest.raises(SandboxUnavailableError):
            await asyncio.wait_for(runner.run(spec(ECHO)), WAIT_SECONDS)
        with pytest.raises(SandboxUnavailableError):
            await asyncio.wait_for(runner.run_when_started(loader(spec(ECHO))), WAIT_SECONDS)
    sandboxes.start_failure = None
    assert (await asyncio.wait_for(runner.run(spec(ECHO)), WAIT_SECONDS)).exit_code == 0
    await sandboxes.drain()


async def test_an_execution_cancelled_while_it_waits_loses_no_slot() -> None:
    sandboxes, runner, holder = await one_slot_held()
    calls: list[str] = []
    given_up = [
        asyncio.create_task(runner.run_when_started(loader(spec(ECHO, "never"), calls)))
        for _ in range(3)
    ]
    await settle()
    for task in given_up:
        task.cancel()
    await asyncio.gather(*given_up, return_exceptions=True)
    await asyncio.wait_for(holder, WAIT_SECONDS)
    for code in ("after-1", "after-2"):
        result = await asyncio.wait_for(runner.run(spec(ECHO, code)), WAIT_SECONDS)
        assert result.exit_code == 0
    assert calls == []
    assert started_codes(sandboxes) == ["holder", "after-1", "after-2"]
    await sandboxes.drain()
