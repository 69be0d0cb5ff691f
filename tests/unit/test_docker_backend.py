"""``DockerBackend`` with a fake engine client: a caller cancelled while the engine creates
its container does not leave that container behind, and no call about a frozen container
(``docker pause`` while an exec starts) waits past its deadline."""

import asyncio
import json
from typing import Any

import aiodocker
import pytest
from aiodocker.stream import Message

from codebeaker.exceptions import (
    ContainerPausedError,
    ImageMissingError,
    SandboxError,
    SandboxTimeoutError,
)
from codebeaker.sandbox.docker import AttachedExec, DockerBackend
from codebeaker.sandbox.driver import OutputBuffer

WAIT_SECONDS = 5.0
DEADLINE = 0.05
"""The backend's per-call deadline in these tests."""


async def forever() -> None:
    """What the engine does about a container an exec hangs in: answers nothing."""
    await asyncio.Event().wait()


class FakeStream:
    """An exec's attached stream: ``output`` is what it prints, then it ends (or, with
    ``endless``, prints nothing and never ends)."""

    def __init__(self, engine: "FakeEngine", output: list[bytes], endless: bool) -> None:
        self.engine = engine
        self.output = list(output)
        self.endless = endless
        self.closed = False

    async def __aenter__(self) -> "FakeStream":
        if self.engine.frozen:
            await forever()
        return self

    async def read_out(self) -> Message | None:
        if self.output:
            return Message(1, self.output.pop(0))
        if self.endless:
            await forever()
        return None

    async def write_in(self, data: bytes) -> None:
        await forever()  # a frozen process reads nothing: the pipe stays full

    async def close(self) -> None:
        self.closed = True


class FakeExec:
    def __init__(self, engine: "FakeEngine") -> None:
        self.engine = engine

    def start(self) -> FakeStream:
        stream = FakeStream(self.engine, self.engine.exec_output, self.engine.endless)
        self.engine.streams.append(stream)
        return stream

    async def inspect(self) -> dict[str, Any]:
        return {"Running": False, "ExitCode": 0}


class FakeContainer:
    def __init__(self, engine: "FakeEngine", container_id: str) -> None:
        self.engine = engine
        self.id = container_id

    async def start(self) -> None:
        self.engine.started.append(self.id)

    async def delete(self, *, force: bool, v: bool) -> None:
        assert (force, v) == (True, True)
        if self.id in self.engine.stuck:
            await forever()
        self.engine.deleted.append(self.id)

    async def show(self) -> dict[str, Any]:
        if self.engine.frozen:
            await forever()
        return {"State": {"Running": True, "Paused": self.engine.paused}}

    async def exec(self, argv: list[str], **options: Any) -> FakeExec:
        if self.engine.frozen:
            await forever()
        return FakeExec(self.engine)


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

    async def list(self, *, all: bool, filters: str) -> list[FakeContainer]:
        self.engine.filters.append(json.loads(filters))
        return [FakeContainer(self.engine, container_id) for container_id in self.engine.listed]


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
        self.frozen = False
        """An exec hangs in the container: the engine answers nothing about it."""
        self.paused = False
        self.stuck: set[str] = set()
        """Containers whose removal never returns."""
        self.listed: list[str] = []
        self.filters: list[dict[str, list[str]]] = []
        self.exec_output: list[bytes] = []
        self.endless = False
        self.streams: list[FakeStream] = []

    async def close(self) -> None:
        self.closed = True


def backend_with(engine: FakeEngine) -> DockerBackend:
    backend = DockerBackend("unix:///nonexistent.sock", timeout=DEADLINE)
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


async def run_exec(backend: DockerBackend, timeout: float) -> tuple[OutputBuffer, Any]:
    output = OutputBuffer(1024)
    out = await backend.run_exec(
        "c0", ["true"], user="u", env={}, workdir="/", stdin=None, timeout=timeout, output=output
    )
    return output, out


async def test_no_call_about_a_frozen_container_outlasts_its_deadline() -> None:
    engine = FakeEngine()
    engine.frozen = True
    backend = backend_with(engine)
    calls = {
        "ensure_running": backend.ensure_running("c0"),
        "attach": backend.attach("c0", ["python3"], user="root", workdir="/"),
        "run_exec": run_exec(backend, timeout=30),
    }
    for name, call in calls.items():
        async with asyncio.timeout(WAIT_SECONDS):
            with pytest.raises(SandboxTimeoutError) as caught:
                await call
        assert caught.value.container_id == "c0", name
    engine.stuck.add("c0")
    with pytest.raises(SandboxTimeoutError):
        await asyncio.wait_for(backend.remove_container("c0"), WAIT_SECONDS)
    await backend.close()


async def test_a_command_exec_runs_to_its_own_timeout_past_the_call_deadline() -> None:
    engine = FakeEngine()
    backend = backend_with(engine)
    engine.endless = True
    output, out = await run_exec(backend, timeout=0.3)  # longer than the per-call deadline
    assert (out.timed_out, out.exit_code) == (True, None)  # its own timeout, not the deadline
    assert engine.streams[-1].closed
    engine.endless = False
    engine.exec_output = [b"hi"]
    output, out = await run_exec(backend, timeout=30)
    assert (output.stdout, out.exit_code, out.timed_out) == (b"hi", 0, False)
    await backend.close()


async def test_a_paused_container_fails_commands_but_stays_alive_for_its_session() -> None:
    engine = FakeEngine()
    engine.paused = True
    backend = backend_with(engine)
    with pytest.raises(ContainerPausedError):
        await backend.ensure_running("c0")
    engine.listed = ["c0"]
    assert await backend.labelled({"k": "v"}, running=True) == ["c0"]
    assert sorted(engine.filters[-1]["status"]) == ["paused", "running"]  # the reaper keeps it
    await backend.close()


async def test_removing_by_label_leaves_one_that_hangs_and_removes_the_rest() -> None:
    engine = FakeEngine()
    engine.listed = ["c1", "c2", "c3"]
    engine.stuck.add("c2")
    backend = backend_with(engine)
    removed = await asyncio.wait_for(backend.remove_labelled({"k": "v"}), WAIT_SECONDS)
    assert (removed, sorted(engine.deleted)) == (2, ["c1", "c3"])
    await backend.close()


async def test_a_write_to_a_process_that_stopped_reading_gives_up_and_closes() -> None:
    stream = FakeStream(FakeEngine(), [], endless=True)
    attached = AttachedExec(stream, "c0", DEADLINE)  # type: ignore[arg-type]
    with pytest.raises(SandboxTimeoutError):
        await asyncio.wait_for(attached.write(b"frame"), WAIT_SECONDS)
    assert stream.closed
    with pytest.raises(SandboxError):
        await AttachedExec(BrokenStream(), "c0", DEADLINE).write(b"x")  # type: ignore[arg-type]


class BrokenStream(FakeStream):
    """aiodocker asserts a transport that the engine has already closed."""

    def __init__(self) -> None:
        super().__init__(FakeEngine(), [], endless=False)

    async def write_in(self, data: bytes) -> None:
        raise AssertionError
