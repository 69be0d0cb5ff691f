import asyncio

import pytest

from codebeaker.api import RunResult
from codebeaker.exceptions import LimitExceededError
from codebeaker.runtimes import Runtime
from codebeaker.sessions import NotStartedError, OneShotRunner, RunSpec
from codebeaker.settings import Settings
from tests.unit.fakes import FakeSandboxes

SLOW = Runtime(name="slow", aliases=(), source_file="main.x", run=("sleep", "0.2"))
ECHO = Runtime(name="echo", aliases=(), source_file="main.x", run=("echo", "hi"))
COMPILED = Runtime(
    name="compiled", aliases=(), source_file="m.c", compile=("false",), run=("echo", "ran")
)


def spec(runtime: Runtime) -> RunSpec:
    return RunSpec(runtime=runtime, code="x", stdin=None, timeout_seconds=5, memory_mb=128)


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


async def test_a_declined_start_runs_nothing() -> None:
    settings = Settings()
    sandboxes = FakeSandboxes(settings)
    runner = OneShotRunner(sandboxes, settings)

    async def declined() -> bool:
        return False

    with pytest.raises(NotStartedError):
        await runner.run_when_started(spec(ECHO), declined)
    assert sandboxes.drivers == []
    started: list[bool] = []

    async def accepted() -> bool:
        started.append(True)
        return True

    result = await runner.run_when_started(spec(ECHO), accepted)
    assert (started, result.stdout) == ([True], "echo hi")
    await sandboxes.drain()
