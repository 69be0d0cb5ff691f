"""The execution records, in a real SQLite file."""

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from codebeaker_client.models import (
    ExecutionError,
    ExecutionRecord,
    ExecutionSummary,
    RunRequest,
    RunResult,
)

from codebeaker.api.wire import context_for
from codebeaker.executions import ExecutionStore
from codebeaker.executions.store import StoreInUseError
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
    stored = await store.start("e1")
    assert stored is not None  # the request as it was stored, to run now
    assert RunRequest.model_validate_json(stored, context=context_for(Settings())) == request()
    running = await store.get("e1")
    assert running is not None
    assert running.status == "running"
    assert running.started_at is not None
    assert running.finished_at is None
    assert await store.start("e1") is None  # already running
    assert await store.start("unknown") is None
    await store.add("e2", "python", request())
    assert await store.finish("e2", "cancelled")
    assert await store.start("e2") is None  # cancelled while it waited: never runs
    cancelled = await store.get("e2")
    assert cancelled is not None
    assert (cancelled.status, cancelled.started_at) == ("cancelled", None)


async def test_a_start_and_a_concurrent_insert_both_commit(store: ExecutionStore) -> None:
    await store.add("e1", "python", request())
    added, started = await asyncio.gather(
        store.add("e2", "python", request()), store.start("e1"), return_exceptions=True
    )
    assert isinstance(added, ExecutionRecord), added
    assert isinstance(started, str), started


async def test_finish_happens_once(store: ExecutionStore) -> None:
    await store.add("e1", "python", request())
    await store.start("e1")
    assert await store.finish("e1", "completed", result=RESULT)
    assert not await store.finish("e1", "cancelled")
    failure = ExecutionError(kind="internal_error", message="Internal error")
    assert not await store.finish("e1", "failed", error=failure)
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
    error = ExecutionError(kind="invalid_params", message="Invalid params: timeoutSeconds")
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
    restarted = ExecutionError(kind="server_restarted", message="the server stopped")
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


async def test_queued_are_ids_oldest_first(store: ExecutionStore) -> None:
    for index, execution_id in enumerate(("x", "y", "z", "w")):
        await store.add(execution_id, "python", request(f"print({index})"))
    await store.start("y")
    assert await store.queued() == ["x", "z", "w"]
    stored = await store.start("z")  # the request comes out of the file when it starts
    assert stored is not None
    assert RunRequest.model_validate_json(stored, context=context_for(Settings())) == request(
        "print(2)"
    )


async def stored_requests(path: Path) -> dict[str, str | None]:
    """The request column as the file holds it (read after the store is closed)."""
    with sqlite3.connect(path) as db:
        return dict(db.execute("SELECT id, request FROM executions").fetchall())


async def test_a_request_is_dropped_once_its_execution_ends(tmp_path: Path) -> None:
    path = tmp_path / "executions.sqlite3"
    store = ExecutionStore(path)
    await store.open()
    for execution_id in ("done", "cancelled", "failed", "interrupted", "queued", "running"):
        await store.add(execution_id, "python", request(f"secret_{execution_id}()"))
    for execution_id in ("done", "failed", "interrupted", "running"):
        await store.start(execution_id)
    await store.finish("done", "completed", result=RESULT)
    await store.finish("cancelled", "cancelled")
    await store.finish("failed", "failed", error=ExecutionError(kind="x", message="y"))
    assert await store.fail_interrupted(ExecutionError(kind="server_restarted", message="m")) == 2
    await store.close()
    requests = await stored_requests(path)
    for execution_id in ("done", "cancelled", "failed", "interrupted", "running"):
        assert requests[execution_id] is None, execution_id
    assert requests["queued"] is not None
    assert "secret_queued" in requests["queued"]


async def test_a_list_holds_summaries_without_results(store: ExecutionStore) -> None:
    await store.add("done", "python", request())
    await store.start("done")
    await store.finish("done", "completed", result=RESULT)
    error = ExecutionError(kind="sandbox_unavailable", message="try again later")
    await store.add("failed", "python", request())
    await store.finish("failed", "failed", error=error)
    listed = await store.select(None, 10)
    assert [type(row) for row in listed] == [ExecutionSummary, ExecutionSummary]
    assert all("result" not in row.to_wire() for row in listed)
    assert listed[0].error == error
    record = await store.get("done")
    assert isinstance(record, ExecutionRecord)
    assert record.result == RESULT


def is_open(store: ExecutionStore) -> bool:
    """(A call: mypy would take ``store.is_open`` as fixed after one assert.)"""
    return store.is_open


async def test_a_second_store_on_the_same_file_is_refused(tmp_path: Path) -> None:
    """Two servers with one instance name would run each queued execution twice."""
    path = tmp_path / "executions.sqlite3"
    first = ExecutionStore(path)
    await first.open()
    assert is_open(first)
    second = ExecutionStore(path)
    try:
        await first.add("e1", "python", request())
        with pytest.raises(StoreInUseError, match="CODEBEAKER_INSTANCE"):
            await second.open()
        assert not is_open(second)
        assert await first.get("e1") is not None  # the holder is not disturbed
    finally:
        await first.close()
    assert not is_open(first)
    await second.open()  # released on close
    try:
        assert await second.queued() == ["e1"]
    finally:
        await second.close()


async def test_the_file_is_durable_exclusive_and_incrementally_vacuumed(
    store: ExecutionStore,
) -> None:
    pragmas = {}
    for name in ("journal_mode", "synchronous", "locking_mode", "auto_vacuum"):
        async with store.db.execute(f"PRAGMA {name}") as cursor:
            row = await cursor.fetchone()
        assert row is not None
        pragmas[name] = row[0]
    assert pragmas == {
        "journal_mode": "wal",
        "synchronous": 2,  # FULL
        "locking_mode": "exclusive",
        "auto_vacuum": 2,  # INCREMENTAL
    }


async def freelist(store: ExecutionStore) -> int:
    async with store.db.execute("PRAGMA freelist_count") as cursor:
        row = await cursor.fetchone()
    assert row is not None
    return int(row[0])


async def test_pruning_gives_the_freed_pages_back(store: ExecutionStore) -> None:
    for index in range(20):
        await store.add(f"e{index}", "python", request("x" * 100_000))
    for index in range(20):
        await store.finish(f"e{index}", "cancelled")  # drops the request: pages freed
    assert await freelist(store) > 100
    assert await store.prune(datetime.now(UTC) + timedelta(seconds=1)) == 20
    assert await freelist(store) == 0


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
        assert await second.queued() == ["waiting"]
    finally:
        await second.close()


async def test_records_are_found_and_listed_only_by_their_tenant(store: ExecutionStore) -> None:
    await store.add("mine", "python", request(), "alice")
    await store.add("theirs", "python", request(), "bob")
    assert await store.get("mine", "bob") is None
    mine = await store.get("mine", "alice")
    assert mine is not None
    assert [row.execution_id for row in await store.select(None, 10, "alice")] == ["mine"]
    assert [row.execution_id for row in await store.select("queued", 10, "bob")] == ["theirs"]
    assert await store.select(None, 10) == []  # the local tenant submitted nothing


async def test_a_file_from_before_tenants_gains_the_column(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as db:
        db.executescript(
            "CREATE TABLE executions (id TEXT PRIMARY KEY, status TEXT NOT NULL,"
            " language TEXT NOT NULL, request TEXT, created_at REAL NOT NULL,"
            " started_at REAL, finished_at REAL, result TEXT, error TEXT);"
            "INSERT INTO executions (id, status, language, created_at)"
            " VALUES ('old', 'queued', 'python', 0);"
        )
    db.close()
    store = ExecutionStore(path)
    await store.open()
    try:
        old = await store.get("old")  # the local tenant's
        assert old is not None
        assert old.status == "queued"
        assert await store.get("old", "alice") is None
    finally:
        await store.close()


async def test_only_the_servers_user_may_read_the_file(store: ExecutionStore) -> None:
    """It holds session records, each session's env included."""
    assert store.path.stat().st_mode & 0o777 == 0o600
