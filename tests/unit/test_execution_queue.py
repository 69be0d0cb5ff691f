"""The asynchronous execution queue over a real store, with a runner the test steers."""

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from codebeaker.api import ExecutionQuery, ExecutionRecord, RunRequest, RunResult, context_for
from codebeaker.exceptions import (
    ExecutionFinishedError,
    ExecutionNotFoundError,
    LimitExceededError,
    SandboxUnavailableError,
    UnsupportedLanguageError,
)
from codebeaker.executions import SERVER_RESTARTED, ExecutionQueue, ExecutionStore
from codebeaker.runtimes import RUNTIMES
from codebeaker.sessions import NotStartedError, OneShotRunner, RunSpec
from codebeaker.sessions.oneshot import OnStart
from codebeaker.settings import Settings
from tests.unit.fakes import FakeSandboxes

WAIT_SECONDS = 5.0


class Gate:
    """One run, as the test steers it: it waits for a slot, then runs until ``finish``."""

    def __init__(self) -> None:
        self.slot = asyncio.Event()
        """Set: the run holds a worker slot and asks ``on_start``."""
        self.finish = asyncio.Event()
        """Set: the program ends."""
        self.running = asyncio.Event()
        """Set by the runner once the program runs."""
        self.declined = False
        self.cancelled = False
        self.ended = False

    def open(self) -> "Gate":
        self.slot.set()
        self.finish.set()
        return self


class ControlledRunner(OneShotRunner):
    """``run_when_started`` as the queue uses it, without sandboxes; keyed by the code."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(FakeSandboxes(settings), settings)
        self.gates: dict[str, Gate] = {}
        self.ran: list[str] = []
        self.failure: Exception | None = None

    def gate(self, code: str) -> Gate:
        return self.gates.setdefault(code, Gate())

    async def run_when_started(self, spec: RunSpec, on_start: OnStart) -> RunResult:
        gate = self.gate(spec.code)
        await gate.slot.wait()
        if not await on_start():
            gate.declined = True
            raise NotStartedError
        self.ran.append(spec.code)
        gate.running.set()
        try:
            await gate.finish.wait()
        except asyncio.CancelledError:
            gate.cancelled = True
            raise
        finally:
            gate.ended = True
        if self.failure is not None:
            raise self.failure
        return RunResult(
            stdout=spec.code,
            stderr="",
            exit_code=0,
            timed_out=False,
            truncated=False,
            duration_ms=3,
        )


def resolve(request: RunRequest) -> RunSpec:
    return RunSpec(
        runtime=RUNTIMES.get(request.language),
        code=request.code,
        stdin=request.stdin,
        timeout_seconds=request.timeout_seconds or 5,
        memory_mb=request.memory_limit_mb or 512,
    )


def run_request(code: str, language: str = "python") -> RunRequest:
    return RunRequest.model_validate(
        {"language": language, "code": code, "timeoutSeconds": 5}, context=context_for(SETTINGS)
    )


SETTINGS = Settings(max_queued_executions=3)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return SETTINGS.model_copy(update={"data_dir": tmp_path})


@pytest.fixture
def runner(settings: Settings) -> ControlledRunner:
    return ControlledRunner(settings)


@pytest.fixture
async def queue(settings: Settings, runner: ControlledRunner) -> AsyncIterator[ExecutionQueue]:
    queue = ExecutionQueue(ExecutionStore(settings.database_path), runner, settings, resolve)
    await queue.start()
    try:
        yield queue
    finally:
        for gate in runner.gates.values():  # nothing left waiting: close() has no tasks to kill
            gate.open()
        await queue.close()


async def settled(queue: ExecutionQueue, execution_id: str, status: str) -> ExecutionRecord:
    """The record once it has reached ``status``."""
    async with asyncio.timeout(WAIT_SECONDS):
        while (record := await queue.get(execution_id)).status != status:
            await asyncio.sleep(0.005)
    return record


async def test_an_execution_goes_queued_running_completed(
    queue: ExecutionQueue, runner: ControlledRunner
) -> None:
    gate = runner.gate("print(1)")
    accepted = await queue.submit(run_request("print(1)"))
    assert (accepted.status, accepted.language) == ("queued", "python")
    assert (await queue.get(accepted.execution_id)).status == "queued"

    gate.slot.set()
    await asyncio.wait_for(gate.running.wait(), WAIT_SECONDS)
    running = await queue.get(accepted.execution_id)
    assert running.status == "running"
    assert running.started_at is not None
    assert running.finished_at is None

    gate.finish.set()
    done = await settled(queue, accepted.execution_id, "completed")
    assert done.result is not None
    assert (done.result.stdout, done.result.exit_code, done.error) == ("print(1)", 0, None)
    assert done.finished_at is not None
    assert runner.ran == ["print(1)"]
    listed = await queue.list(ExecutionQuery(status="completed"))
    assert [record.execution_id for record in listed.executions] == [accepted.execution_id]


async def test_a_run_that_cannot_be_carried_out_is_failed_with_its_kind(
    queue: ExecutionQueue, runner: ControlledRunner
) -> None:
    runner.failure = SandboxUnavailableError("docker engine unreachable")
    runner.gate("x").open()
    accepted = await queue.submit(run_request("x"))
    failed = await settled(queue, accepted.execution_id, "failed")
    assert failed.error is not None
    assert (failed.error.kind, failed.result) == ("sandbox_unavailable", None)


async def test_an_unsupported_language_is_refused_and_not_stored(queue: ExecutionQueue) -> None:
    with pytest.raises(UnsupportedLanguageError):
        await queue.submit(run_request("x", language="cobol"))
    assert (await queue.list(ExecutionQuery())).executions == []


async def test_a_cancelled_queued_execution_never_runs(
    queue: ExecutionQueue, runner: ControlledRunner
) -> None:
    gate = runner.gate("queued")
    accepted = await queue.submit(run_request("queued"))
    cancelled = await queue.cancel(accepted.execution_id)
    assert cancelled.status == "cancelled"
    assert cancelled.finished_at is not None
    assert (cancelled.started_at, cancelled.result) == (None, None)
    gate.open()
    await asyncio.sleep(0.05)
    assert runner.ran == []
    assert (await queue.get(accepted.execution_id)).status == "cancelled"


async def test_a_run_cancelled_before_its_slot_is_declined_at_start(
    queue: ExecutionQueue, runner: ControlledRunner, settings: Settings
) -> None:
    """The record is the truth: a run whose record ended while it waited is not started."""
    gate = runner.gate("late")
    accepted = await queue.submit(run_request("late"))
    other = ExecutionStore(settings.database_path)  # e.g. a second process on the same file
    await other.open()
    try:
        assert await other.finish(accepted.execution_id, "cancelled")
    finally:
        await other.close()
    gate.open()
    async with asyncio.timeout(WAIT_SECONDS):
        while not gate.declined:
            await asyncio.sleep(0.005)
    assert runner.ran == []
    record = await queue.get(accepted.execution_id)
    assert (record.status, record.started_at) == ("cancelled", None)


async def test_cancelling_a_running_execution_kills_it_before_answering(
    queue: ExecutionQueue, runner: ControlledRunner
) -> None:
    gate = runner.gate("forever")
    gate.slot.set()
    accepted = await queue.submit(run_request("forever"))
    await asyncio.wait_for(gate.running.wait(), WAIT_SECONDS)
    cancelled = await queue.cancel(accepted.execution_id)
    assert (gate.cancelled, gate.ended) == (True, True)  # the task ended before the answer
    assert cancelled.status == "cancelled"
    assert cancelled.started_at is not None
    assert cancelled.result is None
    gate.finish.set()
    await asyncio.sleep(0.02)
    assert (await queue.get(accepted.execution_id)).status == "cancelled"
    with pytest.raises(ExecutionFinishedError) as caught:
        await queue.cancel(accepted.execution_id)
    assert caught.value.status == "cancelled"


async def test_cancelling_a_finished_execution_is_refused(
    queue: ExecutionQueue, runner: ControlledRunner
) -> None:
    runner.gate("quick").open()
    accepted = await queue.submit(run_request("quick"))
    await settled(queue, accepted.execution_id, "completed")
    with pytest.raises(ExecutionFinishedError) as caught:
        await queue.cancel(accepted.execution_id)
    assert caught.value.status == "completed"
    assert (await queue.get(accepted.execution_id)).status == "completed"


async def test_unknown_executions_are_not_found(queue: ExecutionQueue) -> None:
    with pytest.raises(ExecutionNotFoundError):
        await queue.get("unknown")
    with pytest.raises(ExecutionNotFoundError):
        await queue.cancel("unknown")


async def test_more_than_the_maximum_queued_is_refused_with_retry_after(
    queue: ExecutionQueue, runner: ControlledRunner
) -> None:
    accepted = [await queue.submit(run_request(f"job{index}")) for index in range(3)]
    with pytest.raises(LimitExceededError) as caught:
        await queue.submit(run_request("one too many"))
    assert caught.value.limit == "executions"
    assert caught.value.retry_after is not None
    assert caught.value.retry_after > 0
    assert len((await queue.list(ExecutionQuery())).executions) == 3
    runner.gate("job0").open()
    await settled(queue, accepted[0].execution_id, "completed")
    await asyncio.sleep(0.01)  # the finished task leaves the count
    assert (await queue.submit(run_request("fits again"))).status == "queued"


async def test_finished_records_are_pruned_after_their_ttl(
    tmp_path: Path, runner: ControlledRunner
) -> None:
    settings = SETTINGS.model_copy(update={"data_dir": tmp_path, "execution_ttl_hours": 1e-5})
    queue = ExecutionQueue(ExecutionStore(settings.database_path), runner, settings, resolve)
    await queue.start()
    try:
        runner.gate("done").open()
        done = await queue.submit(run_request("done"))
        waiting = await queue.submit(run_request("waiting"))
        await settled(queue, done.execution_id, "completed")
        await asyncio.sleep(0.05)  # 1e-5 h = 36 ms
        assert await queue.prune() == 1
        with pytest.raises(ExecutionNotFoundError):
            await queue.get(done.execution_id)
        assert (await queue.get(waiting.execution_id)).status == "queued"
    finally:
        runner.gate("waiting").open()
        await queue.close()


async def test_after_a_restart_running_ones_fail_and_queued_ones_run_once(
    settings: Settings, runner: ControlledRunner
) -> None:
    store = ExecutionStore(settings.database_path)
    await store.open()
    await store.add("was-running", "python", run_request("interrupted"))
    await store.add("was-queued", "python", run_request("resumed"))
    await store.add("was-done", "python", run_request("done"))
    assert await store.start("was-running")
    assert await store.finish("was-done", "cancelled")
    await store.close()

    runner.gate("resumed").open()
    queue = ExecutionQueue(ExecutionStore(settings.database_path), runner, settings, resolve)
    await queue.start()
    try:
        interrupted = await queue.get("was-running")
        assert interrupted.status == "failed"
        assert interrupted.error == SERVER_RESTARTED
        assert interrupted.error.kind == "server_restarted"
        resumed = await settled(queue, "was-queued", "completed")
        assert resumed.result is not None
        assert resumed.result.stdout == "resumed"
        assert (await queue.get("was-done")).status == "cancelled"
        await asyncio.sleep(0.05)
        assert runner.ran == ["resumed"]  # exactly once; the interrupted one never again
    finally:
        await queue.close()

    again = ExecutionQueue(ExecutionStore(settings.database_path), runner, settings, resolve)
    await again.start()  # a second restart finds nothing left to do
    try:
        await asyncio.sleep(0.02)
        assert runner.ran == ["resumed"]
    finally:
        await again.close()


async def test_a_queued_request_invalid_after_a_restart_fails_without_running(
    settings: Settings, runner: ControlledRunner
) -> None:
    store = ExecutionStore(settings.database_path)
    await store.open()
    await store.add("big", "python", run_request("x"))
    await store.close()
    stricter = settings.model_copy(
        update={"max_command_timeout_seconds": 1, "default_command_timeout_seconds": 1}
    )
    queue = ExecutionQueue(ExecutionStore(settings.database_path), runner, stricter, resolve)
    await queue.start()
    try:
        record = await queue.get("big")
        assert record.status == "failed"
        assert record.error is not None
        assert record.error.kind == "invalid_params"
        assert runner.ran == []
    finally:
        await queue.close()
