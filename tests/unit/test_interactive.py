"""Interactive runs over fake sandboxes: output, ends, kills, limits, the queue, shutdown."""

import asyncio
from collections.abc import Callable
from types import SimpleNamespace

import pytest
from codebeaker_client.models import CompileResult

from codebeaker.constants import WORKSPACE
from codebeaker.exceptions import (
    LimitExceededError,
    ProgramExitedError,
    RunNotFoundError,
    SandboxUnavailableError,
    ShuttingDownError,
)
from codebeaker.runtimes import Runtime
from codebeaker.sandbox.driver import (
    OutputSink,
    ProcessRequest,
    ProcessResult,
    StdinPipe,
)
from codebeaker.sessions import InteractiveRun, InteractiveRunner, LiveSpec, PendingRuns, RunEnd
from codebeaker.sessions import pending as pending_module
from codebeaker.settings import Settings
from tests.unit.fakes import FakeDriver, FakeSandboxes

WAIT_SECONDS = 5.0


class ScriptedDriver(FakeDriver):
    """FakeDriver plus ``exit N`` (prints to both streams, exits N), ``timed-out`` and
    ``flood`` (a process the driver cut short by its wall clock or its output cap)."""

    async def run(
        self,
        request: ProcessRequest,
        *,
        on_output: OutputSink | None = None,
        stdin: StdinPipe | None = None,
    ) -> ProcessResult:
        argv = request.argv
        if argv[0] == "exit":
            self.calls.append(argv)
            if on_output is not None:
                on_output("stdout", b"out\n")
                on_output("stderr", b"err\n")
            return ProcessResult(b"out\n", b"err\n", int(argv[1]))
        if argv[0] == "timed-out":
            self.calls.append(argv)
            return ProcessResult(b"", b"", 124, timed_out=True)
        if argv[0] == "flood":
            self.calls.append(argv)
            return ProcessResult(b"y" * 10, b"", 137, truncated=True)
        return await super().run(request, on_output=on_output, stdin=stdin)


def runtime(run: tuple[str, ...], compile: tuple[str, ...] | None = None) -> Runtime:
    return Runtime(name="fake", aliases=(), source_file="main.x", run=run, compile=compile)


def live(run: tuple[str, ...], compile: tuple[str, ...] | None = None, **more: bytes) -> LiveSpec:
    rt = runtime(run, compile)
    return LiveSpec(runtime=rt, source="src", compile=compile, command=run, **more)


CAT = live(("cat",))
ENDLESS = live(("sleep", "60"))
BRIEF = live(("sleep", "0.05"))


class Listener:
    def __init__(self) -> None:
        self.outputs: list[tuple[str, bytes]] = []
        self.compiles: list[CompileResult] = []

    def output(self, stream: str, data: bytes) -> None:
        self.outputs.append((stream, data))

    def compiled(self, result: CompileResult) -> None:
        self.compiles.append(result)

    def text(self, stream: str = "stdout") -> bytes:
        return b"".join(data for name, data in self.outputs if name == stream)


def setup(**settings: float) -> tuple[FakeSandboxes, InteractiveRunner]:
    config = Settings(**settings)  # type: ignore[arg-type]
    sandboxes = FakeSandboxes(config)
    sandboxes.driver_class = ScriptedDriver
    return sandboxes, InteractiveRunner(sandboxes, config)


async def until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(WAIT_SECONDS):
        while not condition():
            await asyncio.sleep(0.002)


async def settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


def running(sandboxes: FakeSandboxes, count: int = 1) -> Callable[[], bool]:
    """True once ``count`` sandboxes have had their source written and a program started."""
    return lambda: (
        len(sandboxes.drivers) >= count
        and all(len(driver.calls) >= 2 for driver in sandboxes.drivers[:count])
    )


async def end_of(run: InteractiveRun) -> RunEnd:
    return await asyncio.wait_for(run.wait(), WAIT_SECONDS)


async def door(run: InteractiveRun) -> RunEnd | BaseException:
    """What a socket does: wait for the end (or what kept the run from running), then
    release the run."""
    try:
        return await run.wait()
    except Exception as exc:
        return exc
    finally:
        run.release()


# ------------------------------------------------------------------ a run's life


async def test_output_reaches_the_listener_and_the_run_ends_with_the_exit_code() -> None:
    sandboxes, runner = setup()
    listener = Listener()
    run = runner.start(live(("exit", "3")), listener)
    assert await end_of(run) == RunEnd(3)
    assert listener.outputs == [("stdout", b"out\n"), ("stderr", b"err\n")]
    assert listener.compiles == []  # an interpreted language has no compile step
    driver = sandboxes.drivers[0]
    assert driver.files[f"{WORKSPACE}/main.x"] == b"src"
    assert driver.calls == [("write", f"{WORKSPACE}/main.x"), ("exit", "3")]
    await sandboxes.drain()  # removed in the background once the run ended
    assert sandboxes.removed == [driver.container_id]
    assert run.finished


async def test_input_reaches_the_program_as_it_runs() -> None:
    sandboxes, runner = setup()
    listener = Listener()
    run = runner.start(live(("cat",), stdin=b"ready\n"), listener)
    await until(lambda: listener.text() == b"ready\n")  # input already there at the start
    run.write(b"one\n")
    await until(lambda: listener.text() == b"ready\none\n")
    run.write(b"two\n")
    run.close_stdin()
    assert await end_of(run) == RunEnd(0)
    assert listener.text() == b"ready\none\ntwo\n"
    await sandboxes.drain()


async def test_a_failed_compile_ends_the_run_and_the_program_never_runs() -> None:
    sandboxes, runner = setup()
    listener = Listener()
    run = runner.start(live(("echo", "ran"), compile=("false",)), listener)
    assert await end_of(run) == RunEnd(1, None, compiled=False)
    assert [result.exit_code for result in listener.compiles] == [1]
    assert listener.outputs == []
    assert [call[0] for call in sandboxes.drivers[0].calls] == ["write", "false"]
    await sandboxes.drain()
    assert sandboxes.removed == [sandboxes.drivers[0].container_id]


async def test_a_successful_compile_is_reported_before_the_program_runs() -> None:
    sandboxes, runner = setup()
    listener = Listener()
    run = runner.start(live(("echo", "ran"), compile=("cc", "main.x")), listener)
    assert await end_of(run) == RunEnd(0)
    assert [(r.exit_code, r.stdout) for r in listener.compiles] == [(0, "cc main.x")]
    assert listener.text() == b"echo ran"
    assert [call[0] for call in sandboxes.drivers[0].calls] == ["write", "cc", "echo"]
    await sandboxes.drain()


@pytest.mark.parametrize(
    ("argv", "end"),
    [(("timed-out",), RunEnd(124, "timeout")), (("flood",), RunEnd(137, "output_limit"))],
)
async def test_the_drivers_limits_become_the_end_reason(argv: tuple[str, ...], end: RunEnd) -> None:
    sandboxes, runner = setup()
    assert await end_of(runner.start(live(argv), Listener())) == end
    await sandboxes.drain()


async def test_kill_ends_the_run_removes_its_sandbox_and_frees_its_slot() -> None:
    sandboxes, runner = setup(max_interactive_runs=1)
    run = runner.start(ENDLESS, Listener())
    await until(running(sandboxes))
    behind = runner.start(live(("exit", "0")), Listener())  # waits for the only slot
    await settle()
    assert len(sandboxes.drivers) == 1
    run.kill()
    assert await end_of(run) == RunEnd(137, "killed")
    assert sandboxes.removed == [sandboxes.drivers[0].container_id]  # removed before the end
    assert sandboxes.drivers[0].closed
    assert await end_of(behind) == RunEnd(0)  # the slot went to the next run
    run.kill("timeout")  # after the end: nothing happens, the first reason stands
    assert await end_of(run) == RunEnd(137, "killed")
    with pytest.raises(ProgramExitedError):
        run.write(b"late")
    await sandboxes.drain()
    assert len(sandboxes.removed) == 2


async def test_a_run_killed_while_it_waits_never_starts_and_loses_no_slot() -> None:
    sandboxes, runner = setup(max_interactive_runs=1)
    holder = runner.start(BRIEF, Listener())
    await until(running(sandboxes))
    queued = runner.start(live(("exit", "5")), Listener())
    await settle()
    queued.kill()
    assert await end_of(queued) == RunEnd(137, "killed")
    assert await end_of(holder) == RunEnd(0)
    after = runner.start(live(("exit", "2")), Listener())
    assert await end_of(after) == RunEnd(2)
    assert [driver.calls[-1] for driver in sandboxes.drivers] == [("sleep", "0.05"), ("exit", "2")]
    await sandboxes.drain()


async def test_a_sandbox_that_cannot_start_fails_the_run_and_frees_the_slot() -> None:
    sandboxes, runner = setup(max_interactive_runs=1, interactive_queue_size=0)
    sandboxes.start_failure = SandboxUnavailableError("engine down")
    for _ in range(3):
        with pytest.raises(SandboxUnavailableError):
            await end_of(runner.start(live(("exit", "0")), Listener()))
    sandboxes.start_failure = None
    assert await end_of(runner.start(live(("exit", "0")), Listener())) == RunEnd(0)
    await sandboxes.drain()


async def test_a_run_silent_past_the_idle_limit_times_out() -> None:
    sandboxes, runner = setup(interactive_idle_seconds=0.05)
    run = runner.start(ENDLESS, Listener())
    assert await end_of(run) == RunEnd(124, "timeout")
    assert sandboxes.removed == [sandboxes.drivers[0].container_id]
    with pytest.raises(ProgramExitedError):
        run.write(b"too late")


async def test_input_and_output_keep_a_run_from_going_idle() -> None:
    sandboxes, runner = setup(interactive_idle_seconds=0.15)
    listener = Listener()
    run = runner.start(CAT, listener)
    await until(running(sandboxes))
    for _ in range(6):  # 0.18 s in all: past the idle limit, but never idle that long
        await asyncio.sleep(0.03)
        run.write(b"x")
    run.close_stdin()
    assert await end_of(run) == RunEnd(0)
    assert listener.text() == b"x" * 6
    await sandboxes.drain()


# ------------------------------------------------------------------ limits


async def test_past_the_queue_bound_a_run_is_refused_at_once() -> None:
    sandboxes, runner = setup(max_interactive_runs=1, interactive_queue_size=1)
    first = runner.start(ENDLESS, Listener())
    await until(running(sandboxes))
    second = runner.start(live(("exit", "0")), Listener())
    await settle()
    with pytest.raises(LimitExceededError) as caught:
        runner.start(live(("exit", "0")), Listener())
    assert (caught.value.limit, caught.value.retry_after) == ("interactive_runs", 5.0)
    assert not second.started
    first.kill()
    assert await end_of(second) == RunEnd(0)
    await sandboxes.drain()
    assert len(sandboxes.drivers) == 2  # the refused run never had a sandbox


async def test_without_a_queue_a_run_is_refused_while_every_slot_is_busy() -> None:
    sandboxes, runner = setup(max_interactive_runs=1, interactive_queue_size=0)
    first = runner.start(ENDLESS, Listener())
    await until(running(sandboxes))
    with pytest.raises(LimitExceededError):
        runner.start(live(("exit", "0")), Listener())
    first.kill()
    await end_of(first)
    assert await end_of(runner.start(live(("exit", "0")), Listener())) == RunEnd(0)
    await sandboxes.drain()


async def test_clients_arriving_together_count_against_the_queue_bound() -> None:
    """Five sockets ask in the same event-loop tick for one slot and one queue place."""
    sandboxes, runner = setup(max_interactive_runs=1, interactive_queue_size=1)
    runs: list[InteractiveRun] = []

    async def client() -> bool:
        await asyncio.sleep(0)
        try:
            runs.append(runner.start(ENDLESS, Listener()))
        except LimitExceededError:
            return False
        return True

    try:
        accepted = await asyncio.gather(*(client() for _ in range(5)))
        assert sum(accepted) == 2  # one runs, one waits, three are refused
    finally:
        for run in runs:
            run.kill()
        await asyncio.gather(*(door(run) for run in runs))
        await sandboxes.drain()


async def test_input_past_the_runs_input_cap_is_refused() -> None:
    _, runner = setup(run_input_limit_bytes=1024)
    run = runner.start(live(("sleep", "60"), stdin=b"a" * 1000), Listener())
    run.write(b"b" * 24)  # exactly the cap, counting the input given at the start
    with pytest.raises(LimitExceededError) as caught:
        run.write(b"c")
    assert caught.value.limit == "run_input"
    run.kill()
    await end_of(run)


async def test_input_after_close_stdin_or_the_end_is_refused() -> None:
    sandboxes, runner = setup()
    run = runner.start(CAT, Listener())
    run.write(b"a")
    run.close_stdin()
    with pytest.raises(ProgramExitedError):
        run.write(b"b")
    with pytest.raises(ProgramExitedError):
        run.close_stdin()
    assert await end_of(run) == RunEnd(0)
    ended = runner.start(live(("exit", "0")), Listener())
    await end_of(ended)
    with pytest.raises(ProgramExitedError):
        ended.write(b"x")
    with pytest.raises(ProgramExitedError):
        ended.close_stdin()
    await sandboxes.drain()


async def test_input_after_a_kill_is_refused_at_once() -> None:
    sandboxes, runner = setup()
    run = runner.start(ENDLESS, Listener())
    await until(running(sandboxes))
    run.kill()
    with pytest.raises(ProgramExitedError):  # before the sandbox is even gone
        run.write(b"x")
    await end_of(run)


# ------------------------------------------------------------------ shutdown


async def test_shutdown_refuses_new_runs() -> None:
    _, runner = setup()
    await asyncio.wait_for(runner.shutdown(grace=1.0), WAIT_SECONDS)
    with pytest.raises(ShuttingDownError):
        runner.start(live(("exit", "0")), Listener())


async def test_shutdown_lets_running_runs_finish_within_the_grace() -> None:
    sandboxes, runner = setup()
    run = runner.start(BRIEF, Listener())
    await until(running(sandboxes))
    reported = asyncio.create_task(door(run))
    loop = asyncio.get_running_loop()
    began = loop.time()
    await asyncio.wait_for(runner.shutdown(grace=3.0), WAIT_SECONDS)
    assert loop.time() - began < 1.0  # returns once the door released the run
    assert await reported == RunEnd(0)  # it ended by itself, not killed
    with pytest.raises(ShuttingDownError):
        runner.start(live(("exit", "0")), Listener())
    await sandboxes.drain()


async def test_shutdown_refuses_queued_runs_and_kills_running_ones_after_the_grace() -> None:
    sandboxes, runner = setup(max_interactive_runs=1)
    endless = runner.start(ENDLESS, Listener())
    await until(running(sandboxes))
    queued = runner.start(live(("exit", "0")), Listener())
    await settle()
    reports = [asyncio.create_task(door(endless)), asyncio.create_task(door(queued))]
    loop = asyncio.get_running_loop()
    began = loop.time()
    await asyncio.wait_for(runner.shutdown(grace=0.1), WAIT_SECONDS)
    assert 0.1 <= loop.time() - began < 1.0
    ran, refused = await asyncio.gather(*reports)
    assert ran == RunEnd(137, "killed")
    assert isinstance(refused, ShuttingDownError)
    assert len(sandboxes.drivers) == 1  # the queued run never had a sandbox
    assert sandboxes.removed == [sandboxes.drivers[0].container_id]
    assert list(runner) == []  # every run was released


async def test_shutdown_does_not_wait_for_a_door_that_never_reports(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("codebeaker.sessions.interactive.REPORT_SECONDS", 0.05)
    sandboxes, runner = setup()
    run = runner.start(ENDLESS, Listener())  # nobody will release it
    await until(running(sandboxes))
    await asyncio.wait_for(runner.shutdown(grace=0.05), WAIT_SECONDS)
    assert await end_of(run) == RunEnd(137, "killed")
    assert sandboxes.removed == [sandboxes.drivers[0].container_id]


# ------------------------------------------------------------------ pending runs (framing B)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """The pending runs' clock only (the event loop keeps the real one)."""
    clock = Clock()
    monkeypatch.setattr(pending_module, "time", SimpleNamespace(monotonic=clock.monotonic))
    return clock


def test_a_pending_run_is_claimed_once(clock: Clock) -> None:
    pending = PendingRuns(Settings())
    run_id = pending.add(BRIEF)
    other = pending.add(CAT)
    assert run_id != other
    assert len(run_id) >= 16  # not guessable
    assert pending.claim(run_id) is BRIEF
    with pytest.raises(RunNotFoundError):
        pending.claim(run_id)
    with pytest.raises(RunNotFoundError):
        pending.claim("unknown")
    assert pending.claim(other) is CAT
    assert len(pending) == 0


async def test_a_pending_run_expires(clock: Clock) -> None:
    pending = PendingRuns(Settings(pending_run_seconds=60))
    late, kept = pending.add(BRIEF), None
    clock.now += 30
    kept = pending.add(CAT)
    clock.now += 30  # ``late`` is 60 s old: gone
    with pytest.raises(RunNotFoundError):
        pending.claim(late)
    await pending.prune()
    assert len(pending) == 1
    assert pending.claim(kept) is CAT


async def test_pending_runs_beyond_capacity_are_refused_until_some_expire(clock: Clock) -> None:
    pending = PendingRuns(Settings(max_pending_runs=2, pending_run_seconds=60))
    pending.add(BRIEF)
    pending.add(BRIEF)
    with pytest.raises(LimitExceededError) as caught:
        pending.add(BRIEF)
    assert (caught.value.limit, caught.value.retry_after) == ("pending_runs", 60)
    clock.now += 61
    run_id = pending.add(CAT)  # the expired ones made room
    assert len(pending) == 1
    assert pending.claim(run_id) is CAT


def test_pending_runs_are_bounded_in_bytes_too(
    clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pending_module, "PENDING_BYTES", 2 * len(BRIEF.source) + 1)
    pending = PendingRuns(Settings())
    pending.add(BRIEF)
    pending.add(BRIEF)
    with pytest.raises(LimitExceededError):
        pending.add(BRIEF)
    clock.now += 61
    pending.add(BRIEF)  # expired ones free their bytes
