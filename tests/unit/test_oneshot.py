import asyncio

import pytest

from codebeaker.exceptions import LimitExceededError
from codebeaker.runtimes import Runtime
from codebeaker.sessions import OneShotRunner, RunRequest
from codebeaker.settings import Settings
from tests.unit.fakes import FakeSandboxes

SLOW = Runtime(name="slow", aliases=(), source_file="main.x", run=("sleep", "0.2"))
COMPILED = Runtime(
    name="compiled", aliases=(), source_file="m.c", compile=("false",), run=("echo", "ran")
)


def request(runtime: Runtime) -> RunRequest:
    return RunRequest(runtime=runtime, code="x", stdin=None, timeout_seconds=5, memory_mb=128)


async def test_runs_beyond_the_queue_are_refused_and_none_is_left_behind() -> None:
    settings = Settings(max_concurrent_runs=1, run_queue_size=1)
    sandboxes = FakeSandboxes(settings)
    runner = OneShotRunner(sandboxes, settings)
    first = asyncio.create_task(runner.run(request(SLOW)))
    await asyncio.sleep(0.05)
    second = asyncio.create_task(runner.run(request(SLOW)))  # waits for the slot
    await asyncio.sleep(0.05)
    with pytest.raises(LimitExceededError) as caught:
        await runner.run(request(SLOW))
    assert caught.value.limit == "runs"
    results = await asyncio.gather(first, second)
    assert [r["exitCode"] for r in results] == [0, 0]
    assert len(sandboxes.drivers) == 2
    assert sorted(sandboxes.removed) == sorted(d.container_id for d in sandboxes.drivers)


async def test_a_failed_compile_skips_the_run() -> None:
    settings = Settings()
    sandboxes = FakeSandboxes(settings)
    result = await OneShotRunner(sandboxes, settings).run(request(COMPILED))
    assert result["compile"]["exitCode"] == 1
    assert (result["exitCode"], result["stdout"], result["timedOut"]) == (1, "", False)
    assert [call[0] for call in sandboxes.drivers[0].calls] == ["write", "false"]
