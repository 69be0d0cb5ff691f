"""``DockerBackend.start_container`` with a fake engine client: a caller cancelled while the
engine creates its container does not leave that container behind."""

import asyncio
from typing import Any

import aiodocker
import pytest

from codebeaker.exceptions import ImageMissingError
from codebeaker.sandbox.docker import DockerBackend

WAIT_SECONDS = 5.0


class FakeContainer:
    def __init__(self, engine: "FakeEngine", container_id: str) -> None:
        self.engine = engine
        self.id = container_id

    async def start(self) -> None:
        self.engine.started.append(self.id)

    async def delete(self, *, force: bool, v: bool) -> None:
        assert (force, v) == (True, True)
        self.engine.deleted.append(self.id)


class FakeContainers:
    def __init__(self, engine: "FakeEngine") -> None:
        self.engine = engine

    async def create(self, config: dict[str, Any]) -> FakeContainer:
        self.engine.creating.set()
        await self.engine.created.wait()  # the engine takes its time
        if self.engine.failure is not None:
            raise self.engine.failure
        return FakeContainer(self.engine, f"c{len(self.engine.made)}")

    def container(self, container_id: str) -> FakeContainer:
        return FakeContainer(self.engine, container_id)


class FakeEngine:
    """What ``DockerBackend`` uses of ``aiodocker.Docker``."""

    def __init__(self) -> None:
        self.containers = FakeContainers(self)
        self.creating = asyncio.Event()
        self.created = asyncio.Event()
        self.failure: Exception | None = None
        self.made: list[str] = []
        self.started: list[str] = []
        self.deleted: list[str] = []
        self.closed = False

    async def close(self) -> None:
        self.closed = True


def backend_with(engine: FakeEngine) -> DockerBackend:
    backend = DockerBackend("unix:///nonexistent.sock")
    backend._docker = engine  # type: ignore[assignment]
    return backend


async def cancelled_while_creating() -> tuple[FakeEngine, DockerBackend, asyncio.Task[str]]:
    """A start whose caller is cancelled while the engine is still creating the container."""
    engine = FakeEngine()
    backend = backend_with(engine)
    caller = asyncio.create_task(backend.start_container({"Image": "codebeaker/python"}))
    await asyncio.wait_for(engine.creating.wait(), WAIT_SECONDS)
    caller.cancel()
    return engine, backend, caller


async def test_a_container_created_for_a_caller_cancelled_meanwhile_is_removed() -> None:
    engine, backend, caller = await cancelled_while_creating()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(caller, WAIT_SECONDS)  # the caller does not wait for the engine
    assert engine.deleted == []
    engine.created.set()  # the engine finishes the container nobody will use
    async with asyncio.timeout(WAIT_SECONDS):
        while not engine.deleted:
            await asyncio.sleep(0.001)
    await backend.close()
    assert (engine.started, engine.deleted, engine.closed) == ([], ["c0"], True)


async def test_close_waits_for_a_create_still_in_flight_and_removes_its_container() -> None:
    engine, backend, caller = await cancelled_while_creating()
    with pytest.raises(asyncio.CancelledError):
        await caller
    engine.created.set()
    try:
        await backend.close()  # at shutdown, with the engine still creating
        removed_by_close = list(engine.deleted)
    finally:
        backend._docker = engine  # type: ignore[assignment]  # what runs late: not a real client
        await asyncio.sleep(0.01)
        await backend.close()
    assert removed_by_close == ["c0"]


async def test_a_create_that_fails_after_the_caller_left_removes_nothing() -> None:
    engine = FakeEngine()
    engine.failure = aiodocker.DockerError(404, "No such image: codebeaker/python")
    backend = backend_with(engine)
    caller = asyncio.create_task(backend.start_container({"Image": "codebeaker/python"}))
    await asyncio.wait_for(engine.creating.wait(), WAIT_SECONDS)
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    engine.created.set()
    await backend.close()
    assert (engine.started, engine.deleted) == ([], [])


async def test_an_uncancelled_start_returns_the_started_container() -> None:
    engine = FakeEngine()
    engine.created.set()
    backend = backend_with(engine)
    assert await backend.start_container({"Image": "codebeaker/python"}) == "c0"
    assert (engine.started, engine.deleted) == (["c0"], [])
    engine.failure = aiodocker.DockerError(404, "No such image: codebeaker/go:latest")
    with pytest.raises(ImageMissingError):
        await backend.start_container({"Image": "codebeaker/go:latest"})
    await backend.close()
