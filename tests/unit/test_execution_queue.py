"""The asynchronous execution queue over a real store and the real runner, with sandboxes
the test steers: each program runs until the test lets it finish."""

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from codebeaker_client.models import ExecutionQuery, ExecutionRecord, RunRequest

from codebeaker.api.wire import context_for
from codebeaker.constants import LOCAL_TENANT, WORKSPACE
from codebeaker.exceptions import (
    ExecutionFinishedError,
    ExecutionNotFoundError,
    LimitExceededError,
    SandboxUnavailableError,
    UnsupportedLanguageError,
)
from codebeaker.executions import SERVER_RESTARTED, ExecutionQueue, ExecutionStore
from codebeaker.runtimes import RUNTIMES
from codebeaker.sandbox.driver import (
    OutputSink,
    ProcessRequest,
    ProcessResult,
    StdinPipe,
)
from codebeaker.sessions import OneShotRunner, RunSpec
from codebeaker.settings import Settings
from tests.unit.fakes import FakeDriver, FakeSandboxes

WAIT_SECONDS = 5.0
SOURCE = f"{WORKSPACE}/main.py"


class Gate:
    """One program, as the test steers it: it runs until ``finish`` is set."""

    def __init__(self) -> None:
        self.finish = asyncio.Event()
        self.running = asyncio.Event()
        """Set once the program runs (its execution holds a slot)."""
        self.cancelled = False
        self.ended = False


class SteeredDriver(FakeDriver):
    def __init__(self, container_id: str, sandboxes: "SteeredSandboxes") -> None:
        super().__init__(container_id)
        self.sandboxes = sandboxes

    async def run(
        self,
        request: ProcessRequest,
        *,
        on_output: OutputSink | None = None,
        stdin: StdinPipe | None = None,
    ) -> ProcessResult:
        code = self.files[SOURCE].decode()
        gate = self.sandboxes.gate(code)
        self.sandboxes.ran.append(code)
        gate.running.set()
        try:
            await gate.finish.wait()
        except asyncio.CancelledError:
            gate.cancelled = True
            raise
        finally:
            gate.ended = True
        return ProcessResult(code.encode(), b"", 0)


class SteeredSandboxes(FakeSandboxes):
    """Python programs whose code names their gate."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.gates: dict[str, Gate] = {}
        self.ran: list[str] = []

    def gate(self, code: str) -> Gate:
        return self.gates.setdefault(code, Gate())

    def new_driver(self, container_id: str) -> FakeDriver:
        return SteeredDriver(container_id, self)


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


SETTINGS = Settings(max_queued_executions=3, max_concurrent_runs=1)
GENERIC_UNAVAILABLE = "the sandbox engine cannot be reached; try again later"


class SlowStore(ExecutionStore):
    """Inserts take a while (a busy disk): concurrent submissions overlap in ``add``."""

    failure: Exception | None = None

    async def add(
        self, execution_id: str, language: str, request: RunRequest, tenant: str = LOCAL_TENANT
    ) -> ExecutionRecord:
        await asyncio.sleep(0.01)
        if self.failure is not None:
            raise self.failure
        return await super().add(execution_id, language, request, tenant)


@dataclass
class Harness:
    settings: Settings
    sandboxes: SteeredSandboxes
    runner: OneShotRunner
    store: ExecutionStore
    queue: ExecutionQueue
    held: list[asyncio.Task[Any]] = field(default_factory=list)

    async def hold_slot(self, code: str = "blocker") -> Gate:
        """A synchronous run takes the only slot and keeps it until its gate finishes."""
        task = asyncio.create_task(self.runner.run(resolve(run_request(code))))
        self.held.append(task)
        gate = self.sandboxes.gate(code)
        await asyncio.wait_for(gate.running.wait(), WAIT_SECONDS)
        return gate

    @property
    def ran(self) -> list[str]:
        """The executions' programs that ran (the slot holders' left out)."""
        return [code for code in self.sandboxes.ran if not code.startswith("blocker")]

    async def close(self) -> None:
        for gate in self.sandboxes.gates.values():
            gate.finish.set()
        await asyncio.gather(*self.held, return_exceptions=True)
        await self.queue.close()
        await self.sandboxes.drain()


def harness_for(settings: Settings, store: ExecutionStore | None = None) -> Harness:
    sandboxes = SteeredSandboxes(settings)
    runner = OneShotRunner(sandboxes, settings)
    store = store or ExecutionStore(settings.database_path)
    return Harness(
        settings, sandboxes, runner, store, ExecutionQueue(store, runner, settings, resolve)
    )


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return SETTINGS.model_copy(update={"data_dir": tmp_path})


@pytest.fixture
async def harness(settings: Settings) -> AsyncIterator[Harness]:
    harness = harness_for(settings)
    await harness.queue.open()
    await harness.queue.resume()
    try:
        yield harness
    finally:
        await harness.close()


@pytest.fixture
def queue(harness: Harness) -> ExecutionQueue:
    return harness.queue


async def settled(queue: ExecutionQueue, execution_id: str, status: str) -> ExecutionRecord:
    """The record once it has reached ``status``."""
    async with asyncio.timeout(WAIT_SECONDS):
        while (record := await queue.get(execution_id)).status != status:
            await asyncio.sleep(0.005)
    return record


async def test_an_execution_goes_queued_running_completed(
    harness: Harness, queue: ExecutionQueue
) -> None:
    blocker = await harness.hold_slot()
    gate = harness.sandboxes.gate("print(1)")
    accepted = await queue.submit(run_request("print(1)"))
    assert (accepted.status, accepted.language) == ("queued", "python")
    await asyncio.sleep(0.02)
    assert (await queue.get(accepted.execution_id)).status == "queued"

    blocker.finish.set()
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
    assert harness.ran == ["print(1)"]
    listed = await queue.list(ExecutionQuery(status="completed"))
    assert [record.execution_id for record in listed.executions] == [accepted.execution_id]
    assert not hasattr(listed.executions[0], "result")  # list rows are summaries


async def test_a_run_that_cannot_be_carried_out_is_failed_with_kind_and_message(
    harness: Harness, queue: ExecutionQueue
) -> None:
    harness.sandboxes.start_failure = SandboxUnavailableError("cannot reach unix:///secret.sock")
    accepted = await queue.submit(run_request("x"))
    failed = await settled(queue, accepted.execution_id, "failed")
    assert failed.error is not None
    assert failed.result is None
    assert failed.error.kind == "sandbox_unavailable"
    assert failed.error.message == GENERIC_UNAVAILABLE  # the engine's address stays ours
    assert failed.started_at is not None
    harness.sandboxes.start_failure = None
    again = await queue.submit(run_request("after"))  # the failed run gave its slot back
    harness.sandboxes.gate("after").finish.set()
    await settled(queue, again.execution_id, "completed")


async def test_an_unsupported_language_is_refused_and_not_stored(queue: ExecutionQueue) -> None:
    with pytest.raises(UnsupportedLanguageError):
        await queue.submit(run_request("x", language="cobol"))
    assert (await queue.list(ExecutionQuery())).executions == []


async def test_a_cancelled_queued_execution_never_runs(
    harness: Harness, queue: ExecutionQueue
) -> None:
    blocker = await harness.hold_slot()
    accepted = await queue.submit(run_request("queued"))
    cancelled = await queue.cancel(accepted.execution_id)
    assert cancelled.status == "cancelled"
    assert cancelled.finished_at is not None
    assert (cancelled.started_at, cancelled.result) == (None, None)
    harness.sandboxes.gate("queued").finish.set()
    blocker.finish.set()
    later = await queue.submit(run_request("later"))
    harness.sandboxes.gate("later").finish.set()
    await settled(queue, later.execution_id, "completed")
    assert harness.ran == ["later"]
    assert (await queue.get(accepted.execution_id)).status == "cancelled"


async def test_a_run_whose_record_ended_while_it_waited_is_declined_at_start(
    harness: Harness, queue: ExecutionQueue
) -> None:
    """The record is the truth: a run whose record ended while it waited is not started
    (and its slot goes on to the next)."""
    blocker = await harness.hold_slot()
    accepted = await queue.submit(run_request("late"))
    assert await harness.store.finish(accepted.execution_id, "cancelled")  # behind the queue
    later = await queue.submit(run_request("later"))
    blocker.finish.set()
    harness.sandboxes.gate("later").finish.set()
    await settled(queue, later.execution_id, "completed")
    assert harness.ran == ["later"]
    assert len(harness.sandboxes.drivers) == 2  # the blocker's and the later one's
    record = await queue.get(accepted.execution_id)
    assert (record.status, record.started_at) == ("cancelled", None)


async def test_cancelling_a_running_execution_kills_it_before_answering(
    harness: Harness, queue: ExecutionQueue
) -> None:
    gate = harness.sandboxes.gate("forever")
    accepted = await queue.submit(run_request("forever"))
    await asyncio.wait_for(gate.running.wait(), WAIT_SECONDS)
    waiting = await queue.submit(run_request("waiting"))
    (container,) = [driver.container_id for driver in harness.sandboxes.drivers]
    cancelled = await queue.cancel(accepted.execution_id)
    assert (gate.cancelled, gate.ended) == (True, True)  # the task ended before the answer
    assert harness.sandboxes.removed == [container]  # and so did its container
    assert cancelled.status == "cancelled"
    assert cancelled.started_at is not None
    assert cancelled.result is None
    harness.sandboxes.gate("waiting").finish.set()
    await settled(queue, waiting.execution_id, "completed")  # its slot went on
    assert (await queue.get(accepted.execution_id)).status == "cancelled"
    with pytest.raises(ExecutionFinishedError) as caught:
        await queue.cancel(accepted.execution_id)
    assert caught.value.status == "cancelled"


async def test_cancelling_a_finished_execution_is_refused(
    harness: Harness, queue: ExecutionQueue
) -> None:
    harness.sandboxes.gate("quick").finish.set()
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
    harness: Harness, queue: ExecutionQueue
) -> None:
    await harness.hold_slot()  # (no execution starts meanwhile: see the test below)
    accepted = [await queue.submit(run_request(f"job{index}")) for index in range(3)]
    with pytest.raises(LimitExceededError) as caught:
        await queue.submit(run_request("one too many"))
    assert caught.value.limit == "executions"
    assert caught.value.retry_after == 5.0
    assert len((await queue.list(ExecutionQuery())).executions) == 3
    harness.sandboxes.gate("job0").finish.set()
    harness.sandboxes.gate("blocker").finish.set()
    await settled(queue, accepted[0].execution_id, "completed")
    await asyncio.sleep(0.01)  # the finished task leaves the count
    assert (await queue.submit(run_request("fits again"))).status == "queued"


async def test_a_submission_while_another_execution_starts_is_accepted(
    harness: Harness, queue: ExecutionQueue
) -> None:
    """A free slot: each submission's execution starts (store.start) while the next
    submission inserts and commits."""
    accepted = [await queue.submit(run_request(f"job{index}")) for index in range(3)]
    for index in range(3):
        harness.sandboxes.gate(f"job{index}").finish.set()
    for record in accepted:
        await settled(queue, record.execution_id, "completed")


async def test_concurrent_submissions_never_exceed_the_maximum(settings: Settings) -> None:
    """Each submission reserves its place before its insert awaits: ten at once, three in."""
    harness = harness_for(settings, SlowStore(settings.database_path))
    await harness.queue.open()
    await harness.queue.resume()
    try:
        blocker = await harness.hold_slot()
        outcomes = await asyncio.gather(
            *(harness.queue.submit(run_request(f"job{index}")) for index in range(10)),
            return_exceptions=True,
        )
        accepted = [o for o in outcomes if isinstance(o, ExecutionRecord)]
        refused = [o for o in outcomes if isinstance(o, LimitExceededError)]
        assert (len(accepted), len(refused)) == (3, 7)
        assert len((await harness.queue.list(ExecutionQuery())).executions) == 3
        with pytest.raises(LimitExceededError):
            await harness.queue.submit(run_request("still full"))
        blocker.finish.set()
        for index in range(10):
            harness.sandboxes.gate(f"job{index}").finish.set()
        for record in accepted:
            await settled(harness.queue, record.execution_id, "completed")
        await asyncio.sleep(0.01)
        assert len(harness.ran) == 3
        second = await asyncio.gather(
            *(harness.queue.submit(run_request(f"more{index}")) for index in range(5)),
            return_exceptions=True,
        )
        assert sum(isinstance(o, ExecutionRecord) for o in second) == 3
    finally:
        await harness.close()


async def test_a_failed_insert_gives_its_reserved_place_back(settings: Settings) -> None:
    store = SlowStore(settings.database_path)
    harness = harness_for(settings, store)
    await harness.queue.open()
    await harness.queue.resume()
    try:
        await harness.hold_slot()
        store.failure = OSError("disk full")
        for _ in range(5):
            with pytest.raises(OSError, match="disk full"):
                await harness.queue.submit(run_request("x"))
        store.failure = None
        for index in range(3):
            await harness.queue.submit(run_request(f"job{index}"))
        with pytest.raises(LimitExceededError):
            await harness.queue.submit(run_request("one too many"))
    finally:
        await harness.close()


async def test_a_synchronous_run_goes_before_queued_executions(
    harness: Harness, queue: ExecutionQueue
) -> None:
    blocker = await harness.hold_slot()
    queued = [await queue.submit(run_request(f"job{index}")) for index in range(2)]
    synchronous = asyncio.create_task(harness.runner.run(resolve(run_request("sync"))))
    await asyncio.sleep(0.02)
    for code in ("sync", "job0", "job1"):
        harness.sandboxes.gate(code).finish.set()
    blocker.finish.set()
    assert (await asyncio.wait_for(synchronous, WAIT_SECONDS)).stdout == "sync"
    for record in queued:
        await settled(queue, record.execution_id, "completed")
    assert harness.sandboxes.ran == ["blocker", "sync", "job0", "job1"]


async def test_finished_records_are_pruned_after_their_ttl(tmp_path: Path) -> None:
    settings = SETTINGS.model_copy(update={"data_dir": tmp_path, "execution_ttl_hours": 1e-5})
    harness = harness_for(settings)
    queue = harness.queue
    await queue.open()
    await queue.resume()
    try:
        harness.sandboxes.gate("done").finish.set()
        done = await queue.submit(run_request("done"))
        await settled(queue, done.execution_id, "completed")
        await harness.hold_slot()
        waiting = await queue.submit(run_request("waiting"))
        await asyncio.sleep(0.05)  # 1e-5 h = 36 ms
        assert await queue.prune() == 1
        with pytest.raises(ExecutionNotFoundError):
            await queue.get(done.execution_id)
        assert (await queue.get(waiting.execution_id)).status == "queued"
    finally:
        await harness.close()
    assert await queue.prune() == 0  # after shutdown (the housekeeping tick raced it): no-op


async def test_after_a_restart_running_ones_fail_and_queued_ones_run_once(
    settings: Settings,
) -> None:
    store = ExecutionStore(settings.database_path)
    await store.open()
    await store.add("was-running", "python", run_request("interrupted"))
    await store.add("was-queued", "python", run_request("resumed"))
    await store.add("was-done", "python", run_request("done"))
    assert await store.start("was-running") is not None
    assert await store.finish("was-done", "cancelled")
    await store.close()

    first = harness_for(settings)
    first.sandboxes.gate("resumed").finish.set()
    await first.queue.open()
    await first.queue.resume()
    try:
        interrupted = await first.queue.get("was-running")
        assert interrupted.status == "failed"
        assert interrupted.error == SERVER_RESTARTED
        assert interrupted.error.kind == "server_restarted"
        assert interrupted.error.message
        resumed = await settled(first.queue, "was-queued", "completed")
        assert resumed.result is not None
        assert resumed.result.stdout == "resumed"
        assert (await first.queue.get("was-done")).status == "cancelled"
        await asyncio.sleep(0.05)
        assert first.ran == ["resumed"]  # exactly once; the interrupted one never again
    finally:
        await first.close()

    again = harness_for(settings)
    await again.queue.open()
    await again.queue.resume()  # a second restart finds nothing left to do
    try:
        await asyncio.sleep(0.02)
        assert again.ran == []
    finally:
        await again.close()


async def test_a_queued_request_invalid_after_a_restart_fails_without_running(
    settings: Settings,
) -> None:
    store = ExecutionStore(settings.database_path)
    await store.open()
    await store.add("big", "python", run_request("x"))
    await store.close()
    stricter = settings.model_copy(
        update={"max_command_timeout_seconds": 1, "default_command_timeout_seconds": 1}
    )
    harness = harness_for(stricter)
    await harness.queue.open()
    await harness.queue.resume()
    try:
        record = await settled(harness.queue, "big", "failed")
        assert record.error is not None
        assert record.error.kind == "invalid_params"
        assert "timeoutSeconds" in record.error.message
        assert harness.sandboxes.drivers == []
        assert harness.ran == []
        harness.sandboxes.gate("fits").finish.set()  # and its slot was given back
        fits = await harness.queue.submit(
            RunRequest.model_validate(
                {"language": "python", "code": "fits"}, context=context_for(stricter)
            )
        )
        await settled(harness.queue, fits.execution_id, "completed")
    finally:
        await harness.close()


async def test_closing_leaves_queued_executions_for_the_next_server(settings: Settings) -> None:
    first = harness_for(settings)
    await first.queue.open()
    await first.queue.resume()
    try:
        running = first.sandboxes.gate("running")
        started = await first.queue.submit(run_request("running"))
        await asyncio.wait_for(running.running.wait(), WAIT_SECONDS)
        waiting = await first.queue.submit(run_request("waiting"))
    finally:
        await first.queue.close()  # with the run still going: it is killed
        await first.sandboxes.drain()
    assert running.cancelled
    assert first.sandboxes.removed == [first.sandboxes.drivers[0].container_id]

    second = harness_for(settings)
    second.sandboxes.gate("waiting").finish.set()
    await second.queue.open()
    await second.queue.resume()
    try:
        assert (await second.queue.get(started.execution_id)).error == SERVER_RESTARTED
        await settled(second.queue, waiting.execution_id, "completed")
        assert second.ran == ["waiting"]
    finally:
        await second.close()
