"""The service's shutdown: bounded even when the engine hangs; ``keep`` leaves sessions."""

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from codebeaker_client.models import CreateSessionRequest
from loguru import logger

from codebeaker.executions import ExecutionStore
from codebeaker.sessions.records import SessionRecord, SessionRecords
from codebeaker.settings import Settings
from codebeaker.tenants import LOCAL
from tests.unit.fakes import FakeService


def settings(tmp_path: Path, **fields: object) -> Settings:
    return Settings(data_dir=tmp_path, pool_sizes={}, **fields)  # type: ignore[arg-type]


@pytest.fixture
def logged() -> Iterator[list[str]]:
    lines: list[str] = []
    handler = logger.add(lines.append, format="{message}")
    yield lines
    logger.remove(handler)


async def test_a_removal_that_hangs_cannot_hold_up_shutdown(
    tmp_path: Path, logged: list[str]
) -> None:
    """As a paused container's did (25 minutes): now the shutdown ends on time and says
    what it left to the next start."""
    service = FakeService(settings(tmp_path, shutdown_timeout_seconds=1))
    await service.start()
    info = await service.create_session(CreateSessionRequest(language="python"), tenant=LOCAL)
    service.sandboxes.removals.clear()  # the engine never answers a removal
    started = time.monotonic()
    await service.close()
    assert time.monotonic() - started < 1.5
    assert service.sandboxes.removing == [info.container_id]
    assert any("cut short" in line and info.container_id[:12] in line for line in logged)


async def test_keep_leaves_containers_and_records_for_the_next_server(tmp_path: Path) -> None:
    service = FakeService(settings(tmp_path, shutdown="keep"))
    await service.start()
    info = await service.create_session(CreateSessionRequest(language="python"), tenant=LOCAL)
    await service.close()
    assert service.sandboxes.removing == []  # its container is not removed
    store = ExecutionStore(settings(tmp_path).database_path)
    await store.open()
    try:
        (found,) = await SessionRecords(store).all()
    finally:
        await store.close()
    assert isinstance(found, SessionRecord)
    assert (found.session_id, found.container_id) == (info.session_id, info.container_id)


async def test_remove_closes_sessions_and_drops_their_records(tmp_path: Path) -> None:
    service = FakeService(settings(tmp_path))
    await service.start()
    info = await service.create_session(CreateSessionRequest(language="python"), tenant=LOCAL)
    await service.close()
    assert service.sandboxes.removed == [info.container_id]
    store = ExecutionStore(settings(tmp_path).database_path)
    await store.open()
    try:
        assert await SessionRecords(store).all() == []
    finally:
        await store.close()
