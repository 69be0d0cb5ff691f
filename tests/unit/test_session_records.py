"""Session records in the store's real SQLite file, and the clocks of an adopted session."""

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from codebeaker_client.models import SessionConfig

from codebeaker.executions import ExecutionStore
from codebeaker.runtimes import RUNTIMES
from codebeaker.sandbox.driver import Driver
from codebeaker.sessions import SessionManager
from codebeaker.sessions.records import FLUSH_SECONDS, SessionRecord, SessionRecords
from codebeaker.sessions.sandboxes import SandboxFactory
from codebeaker.settings import Settings
from tests.unit.fakes import FakeSandboxes

CONFIG = SessionConfig(
    idle_timeout_minutes=30,
    max_lifetime_minutes=120,
    memory_limit_mb=256,
    cpu_limit=0.5,
    env={"SECRET": "kept server-side"},
)


NOW = datetime.now(UTC).replace(microsecond=0)


def record(session_id: str = "s1", **changes: object) -> SessionRecord:
    now = NOW
    fields: dict[str, object] = {
        "session_id": session_id,
        "tenant": "alice",
        "language": "python",
        "config": CONFIG,
        "container_id": "c" * 64,
        "driver": "agent",
        "created_at": now - timedelta(minutes=10),
        "last_activity": now - timedelta(minutes=1),
        "execution_count": 7,
    } | changes
    return SessionRecord(**fields)  # type: ignore[arg-type]


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[ExecutionStore]:
    store = ExecutionStore(tmp_path / "instance.sqlite3")
    await store.open()
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
async def records(store: ExecutionStore) -> SessionRecords:
    records = SessionRecords(store)
    await records.open()
    return records


async def test_a_record_reads_back_whole_env_included(records: SessionRecords) -> None:
    await records.add(record())
    assert await records.all() == [record()]
    (read,) = await records.all()
    assert isinstance(read, SessionRecord)
    assert read.config.env == {"SECRET": "kept server-side"}  # left out of wire dumps


async def test_records_survive_the_store_being_reopened(tmp_path: Path) -> None:
    """The next server of the instance opens the same file and finds them."""
    path = tmp_path / "instance.sqlite3"
    first = ExecutionStore(path)
    await first.open()
    records = SessionRecords(first)
    await records.open()
    await records.add(record("a"))
    await records.add(record("b", tenant="bob", driver="exec"))
    await records.forget("a")
    await first.close()
    second = ExecutionStore(path)
    await second.open()
    try:
        found = await SessionRecords(second).all()
    finally:
        await second.close()
    assert found == [record("b", tenant="bob", driver="exec")]


async def test_activity_is_written_in_one_batch_within_the_flush_delay(
    records: SessionRecords, store: ExecutionStore
) -> None:
    await records.add(record("a"))
    await records.add(record("b"))
    later = datetime.now(UTC).replace(microsecond=0)
    for count in range(8, 108):  # a hundred commands: one write, not a hundred
        records.note("a", later, count)
    records.note("b", later, 3)
    assert {r.execution_count for r in await records.all() if isinstance(r, SessionRecord)} == {7}
    changes = store.db.total_changes
    await asyncio.sleep(FLUSH_SECONDS + 0.3)
    assert store.db.total_changes - changes == 2  # one row per session
    found = {r.session_id: r for r in await records.all() if isinstance(r, SessionRecord)}
    assert (found["a"].execution_count, found["a"].last_activity) == (107, later)
    assert (found["b"].execution_count, found["b"].last_activity) == (3, later)


async def test_close_writes_what_is_pending(records: SessionRecords) -> None:
    await records.add(record())
    records.note("s1", datetime.now(UTC), 42)
    await records.close()
    (found,) = await records.all()
    assert isinstance(found, SessionRecord)
    assert found.execution_count == 42


async def test_an_unreadable_record_is_named_not_fatal(
    records: SessionRecords, store: ExecutionStore
) -> None:
    await records.add(record())
    await store.db.execute("UPDATE sessions SET config = '{\"broken\": 1}'")
    await store.db.commit()
    assert await records.all() == [("s1", "c" * 64)]


async def test_writes_that_fail_leave_the_session_working(
    records: SessionRecords, store: ExecutionStore
) -> None:
    await store.db.execute("DROP TABLE sessions")
    await store.db.commit()
    await records.add(record())  # logged, not raised
    await records.forget("s1")
    with pytest.raises(sqlite3.OperationalError):
        await records.all()


def test_expiry_counts_the_time_without_a_server() -> None:
    now = datetime.now(UTC)
    assert record().expiry_reason(now) is None
    old = record(created_at=now - timedelta(minutes=121))
    assert old.expiry_reason(now) == "max lifetime reached"
    idle = record(last_activity=now - timedelta(minutes=31))
    assert idle.expiry_reason(now) == "idle timeout"


async def test_an_adopted_session_keeps_id_tenant_count_and_clocks(
    records: SessionRecords,
) -> None:
    sandboxes = FakeSandboxes(Settings())
    adopted_driver = sandboxes.new_driver("c" * 64)
    now = datetime.now(UTC)
    earlier = record(
        created_at=now - timedelta(minutes=10), last_activity=now - timedelta(minutes=1)
    )

    async def adopt(found: SessionRecord) -> Driver:
        assert found == earlier
        return adopted_driver

    sandboxes.adopt = adopt  # type: ignore[method-assign,assignment]
    await records.add(earlier)
    manager = SessionManager(sandboxes, sandboxes.settings, records)
    assert await manager.adopt(RUNTIMES) == ["c" * 64]
    session = manager.get("s1", "alice")  # still its tenant's, and only its
    assert (session.tenant, session.execution_count, session.driver) == ("alice", 7, adopted_driver)
    assert session.created_at == earlier.created_at
    assert session.config.env == CONFIG.env
    clock = time.monotonic()
    assert 599 <= session.age_seconds(clock) <= 602  # ten minutes old, not new
    assert 59 <= session.idle_seconds(clock) <= 62  # idle since a minute ago
    summary = session.summary()
    assert summary.last_activity == earlier.last_activity
    assert 9.9 <= summary.lifetime_minutes <= 10.1


async def test_records_that_cannot_be_adopted_are_dropped(records: SessionRecords) -> None:
    sandboxes = FakeSandboxes(Settings())

    async def adopt(found: SessionRecord) -> None:
        return None  # its container is gone

    sandboxes.adopt = adopt  # type: ignore[method-assign,assignment]
    now = datetime.now(UTC)
    await records.add(record("gone"))
    await records.add(record("expired", created_at=now - timedelta(hours=3)))
    await records.add(record("unknown", language="cobol"))
    manager = SessionManager(sandboxes, sandboxes.settings, records)
    assert await manager.adopt(RUNTIMES) == []
    assert len(manager) == 0
    assert await records.all() == []


async def test_created_closed_and_busy_sessions_keep_their_record_current(
    records: SessionRecords,
) -> None:
    sandboxes = FakeSandboxes(Settings())
    manager = SessionManager(sandboxes, sandboxes.settings, records)
    session = await manager.create(RUNTIMES.get("python"), CONFIG)
    (written,) = await records.all()
    assert isinstance(written, SessionRecord)
    assert (written.session_id, written.execution_count) == (session.id, 0)
    assert written.container_id == session.container_id
    session.execution_count = 5
    session.touch()
    await records.flush()
    (written,) = await records.all()
    assert isinstance(written, SessionRecord)
    assert written.execution_count == 5
    await manager.close(session.id)
    assert await records.all() == []


class OnePooled:
    """A warm pool holding one driver."""

    def __init__(self, driver: Driver) -> None:
        self.driver: Driver | None = driver

    def take(self, language: str) -> Driver | None:
        driver, self.driver = self.driver, None
        return driver


@pytest.mark.parametrize(("left", "pooled"), [(3600.0, True), (60.0, False)])
async def test_a_pooled_container_serves_only_a_lifetime_its_keepalive_outlasts(
    left: float, pooled: bool
) -> None:
    """Its keep-alive started when it was pooled: one about to end would take a session's
    container down early, so a cold start serves instead (and the old one is removed)."""
    settings = Settings(pool_sizes={})
    factory = SandboxFactory(backend=None, settings=settings, runtimes=RUNTIMES)  # type: ignore[arg-type]
    warm = FakeSandboxes(settings).new_driver("w" * 64)
    cold = FakeSandboxes(settings).new_driver("c" * 64)
    factory.pool = OnePooled(warm)  # type: ignore[assignment]
    factory._ends[warm.container_id] = time.monotonic() + left
    discarded: list[Driver] = []
    factory.discard = lambda driver, then=None: discarded.append(driver)  # type: ignore[method-assign]

    async def start_cold(*args: object, **kwargs: object) -> Driver:
        assert kwargs["lifetime"] == 120 * 60
        return cold

    factory._start_cold = start_cold  # type: ignore[method-assign]
    driver = await factory.start(
        RUNTIMES.get("python"),
        kind="session",
        owner="s",
        memory_mb=settings.default_memory_mb,
        cpu_limit=settings.default_cpu_limit,
        lifetime_seconds=120 * 60 if not pooled else 60,
    )
    assert driver is (warm if pooled else cold)
    assert discarded == ([] if pooled else [warm])
