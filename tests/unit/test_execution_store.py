"""The execution records, in a real SQLite file."""

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from codebeaker.api import ErrorData, RunRequest, RunResult, context_for
from codebeaker.executions import ExecutionStore
from codebeaker.settings import Settings

RESULT = RunResult(
    stdout="42\n", stderr="", exit_code=0, timed_out=False, truncated=False, duration_ms=12
)


def request(code: str = "print(42)") -> RunRequest:
    return RunRequest.model_validate(
        {"language": "python", "code": code, "timeoutSeconds": 5},
        context=context_for(Settings()),
    )


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[ExecutionStore]:
    store = ExecutionStore(tmp_path / "data" / "executions.sqlite3")
    await store.open()
    try:
        yield store
    finally:
        await store.close()


async def test_added_records_start_queued(store: ExecutionStore) -> None:
    before = datetime.now(UTC)
    added = await store.add("e1", "python", request())
    assert (added.execution_id, added.status, added.language) == ("e1", "queued", "python")
    assert (added.started_at, added.finished_at, added.result, added.error) == (
        None,
        None,
        None,
        None,
    )
    fetched = await store.get("e1")
    assert fetched is not None
    assert fetched.status == "queued"
    assert before - timedelta(seconds=1) <= fetched.created_at <= datetime.now(UTC)
    assert await store.get("unknown") is None


async def test_select_is_newest_first_with_status_filter_and_limit(store: ExecutionStore) -> None:
    for execution_id in ("a", "b", "c", "d"):
        await store.add(execution_id, "python", request())
    assert await store.start("b")
    assert await store.finish("c", "completed", result=RESULT)
    assert [r.execution_id for r in await store.select(None, 10)] == ["d", "c", "b", "a"]
    assert [r.execution_id for r in await store.select(None, 2)] == ["d", "c"]
    assert [r.execution_id for r in await store.select("queued", 10)] == ["d", "a"]
    assert [r.execution_id for r in await store.select("queued", 1)] == ["d"]
    assert [r.execution_id for r in await store.select("running", 10)] == ["b"]
    assert [r.execution_id for r in await store.select("completed", 10)] == ["c"]
    assert await store.select("cancelled", 10) == []


async def test_start_only_moves_a_queued_execution(store: ExecutionStore) -> None:
    await store.add("e1", "python", request())
    assert await store.start("e1")
    running = await store.get("e1")
    assert running is not None
    assert running.status == "running"
    assert running.started_at is not None
    assert running.finished_at is None
    assert not await store.start("e1")  # already running
    assert not await store.start("unknown")
    await store.add("e2", "python", request())
    assert await store.finish("e2", "cancelled")
    assert not await store.start("e2")  # cancelled while it waited: never runs
    cancelled = await store.get("e2")
    assert cancelled is not None
    assert (cancelled.status, cancelled.started_at) == ("cancelled", None)


async def test_finish_happens_once(store: ExecutionStore) -> None:
    await store.add("e1", "python", request())
    await store.start("e1")
    assert await store.finish("e1", "completed", result=RESULT)
    assert not await store.finish("e1", "cancelled")
    assert not await store.finish("e1", "failed", error=ErrorData(kind="internal_error"))
    record = await store.get("e1")
    assert record is not None
    assert record.status == "completed"
    assert record.result == RESULT
    assert record.error is None
    assert record.started_at is not None
    assert record.finished_at is not None
    assert record.started_at <= record.finished_at
    assert not await store.finish("unknown", "cancelled")


async def test_a_failure_keeps_its_error(store: ExecutionStore) -> None:
    await store.add("e1", "python", request())
    error = ErrorData(kind="limit_exceeded", limit="runs", retry_after=2.0)
    assert await store.finish("e1", "failed", error=error)
    record = await store.get("e1")
    assert record is not None
    assert (record.status, record.error, record.result) == ("failed", error, None)


async def test_fail_interrupted_fails_running_ones_and_leaves_queued(
    store: ExecutionStore,
) -> None:
    for execution_id in ("run1", "run2", "wait", "done"):
        await store.add(execution_id, "python", request())
    await store.start("run1")
    await store.start("run2")
    await store.start("done")
    await store.finish("done", "completed", result=RESULT)
    restarted = ErrorData(kind="server_restarted")
    assert await store.fail_interrupted(restarted) == 2
    for execution_id in ("run1", "run2"):
        record = await store.get(execution_id)
        assert record is not None
        assert (record.status, record.error) == ("failed", restarted)
        assert record.finished_at is not None
    waiting = await store.get("wait")
    done = await store.get("done")
    assert waiting is not None
    assert done is not None
    assert (waiting.status, waiting.error) == ("queued", None)
    assert (done.status, done.result, done.error) == ("completed", RESULT, None)
    assert await store.fail_interrupted(restarted) == 0


async def test_queued_are_oldest_first_with_their_requests(store: ExecutionStore) -> None:
    for index, execution_id in enumerate(("x", "y", "z", "w")):
        await store.add(execution_id, "python", request(f"print({index})"))
    await store.start("y")
    queued = await store.queued()
    assert [execution_id for execution_id, _ in queued] == ["x", "z", "w"]
    stored = RunRequest.model_validate_json(queued[1][1], context=context_for(Settings()))
    assert stored == request("print(2)")


async def test_prune_forgets_only_finished_records_older_than_the_cutoff(
    store: ExecutionStore,
) -> None:
    for execution_id in ("old", "recent", "queued", "running"):
        await store.add(execution_id, "python", request())
    await store.finish("old", "completed", result=RESULT)
    await asyncio.sleep(0.02)
    cutoff = datetime.now(UTC)
    await asyncio.sleep(0.02)
    await store.finish("recent", "cancelled")
    await store.start("running")
    assert await store.prune(cutoff) == 1
    assert await store.get("old") is None
    remaining = sorted(r.execution_id for r in await store.select(None, 10))
    assert remaining == ["queued", "recent", "running"]
    assert await store.prune(cutoff) == 0
    assert await store.prune(datetime.now(UTC) + timedelta(hours=1)) == 1  # only "recent"


async def test_records_survive_close_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "executions.sqlite3"
    first = ExecutionStore(path)
    await first.open()
    await first.add("done", "python", request())
    await first.add("waiting", "go", request("package main"))
    await first.start("done")
    await first.finish("done", "completed", result=RESULT)
    before = await first.select(None, 10)
    await first.close()
    with pytest.raises(RuntimeError):
        await first.get("done")

    second = ExecutionStore(path)
    await second.open()
    try:
        assert await second.select(None, 10) == before
        done = await second.get("done")
        assert done is not None
        assert (done.status, done.result) == ("completed", RESULT)
        assert [execution_id for execution_id, _ in await second.queued()] == ["waiting"]
    finally:
        await second.close()
