"""The Docker engine, as CodeBeaker uses it: containers by label, and execs with capped output.

This is the only module that touches aiodocker; its errors never leave it untranslated, and
none of its calls waits forever: an exec started into a container frozen by ``docker pause``
never returns, and after it every call about that container hangs in the engine until the
container is thawed. Each call has a deadline (``CODEBEAKER_DOCKER_TIMEOUT_SECONDS``; an
exec running a command gets the command's own timeout on top) and fails past it with
``SandboxTimeoutError``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiodocker
import aiohttp
from aiodocker.containers import DockerContainer
from aiodocker.execs import Exec
from aiodocker.stream import Stream
from loguru import logger

from codebeaker.exceptions import (
    ContainerGoneError,
    ContainerPausedError,
    ImageMissingError,
    SandboxError,
    SandboxTimeoutError,
    SandboxUnavailableError,
)
from codebeaker.sandbox.driver import OutputBuffer, StdinPipe

__all__ = ["DEFAULT_TIMEOUT", "AttachedExec", "DockerBackend", "ExecOutput", "docker_errors"]

STDOUT = 1
STDERR_TAIL = 4096
DEFAULT_SOCKET = "unix:///var/run/docker.sock"
CONNECT_FAILED = 900  # the status aiodocker gives "Cannot connect to Docker Engine"
DEFAULT_TIMEOUT = 30.0
EXIT_CODE_POLLS = 50
LIVE = ("running", "paused")
"""States of a container that is still there for its session: a paused one may be unpaused."""


@asynccontextmanager
async def docker_errors(
    container_id: str = "", image: str = "", *, deadline: float | None = None
) -> AsyncIterator[None]:
    """Translate aiodocker/aiohttp failures into CodeBeaker's exceptions; with
    ``deadline``, a block still running after that many seconds is cancelled and raises
    ``SandboxTimeoutError``."""
    scope = asyncio.timeout(deadline)
    try:
        async with scope:
            yield
    except TimeoutError as exc:
        if not scope.expired():
            raise
        raise SandboxTimeoutError(container_id, deadline or 0.0) from exc
    except aiodocker.DockerError as exc:
        message = str(exc.message)
        if exc.status == CONNECT_FAILED:
            raise SandboxUnavailableError(f"docker engine unreachable: {message}") from exc
        if exc.status == 404 and image and "image" in message.lower():
            raise ImageMissingError(image) from exc
        if exc.status == 404 and container_id:
            raise ContainerGoneError(container_id, "container was removed") from exc
        if container_id and "is paused" in message:
            # 409 from exec create or start, kill, stop: "Container … is paused, unpause
            # the container before exec". The session waits for an unpause.
            raise ContainerPausedError(container_id) from exc
        if container_id and "is not running" in message:
            # 409 from exec create; starting an exec in a container being removed says so
            # with another status ("… is not running: Removal In Progress").
            raise ContainerGoneError(container_id, "container is not running") from exc
        raise SandboxError(f"docker: {message}") from exc
    except (aiohttp.ClientConnectionError, ConnectionError, FileNotFoundError) as exc:
        raise SandboxUnavailableError(f"docker engine unreachable: {exc}") from exc


@dataclass
class ExecOutput:
    """How one exec ended; its output went to the ``OutputBuffer`` it was given."""

    exit_code: int | None
    timed_out: bool
    overflowed: bool
    """A stream passed its cap; the exec was abandoned there and must be killed."""
    started: float
    cancelled: bool = False
    """Its ``cancel`` was set first; the exec was abandoned there and must be killed."""


class AttachedExec:
    """A long-lived exec whose stdin we write and whose stdout we read as it comes.

    What it writes to stderr is kept (the last few KiB) to explain its death in the log.
    Reading has no deadline (the process may rightly be silent for long); a write does:
    a process frozen by ``docker pause`` stops reading, and a write then waits forever.
    """

    def __init__(self, stream: Stream, container_id: str, deadline: float) -> None:
        self._stream = stream
        self._container_id = container_id
        self._deadline = deadline
        self.stderr_tail = b""

    async def read(self) -> bytes | None:
        """The next piece of stdout; None once the process (or its container) is gone."""
        with contextlib.suppress(aiodocker.DockerError, aiohttp.ClientError, OSError):
            while (message := await self._stream.read_out()) is not None:
                if message.stream == STDOUT:
                    return message.data
                self.stderr_tail = (self.stderr_tail + message.data)[-STDERR_TAIL:]
        return None

    async def write(self, data: bytes) -> None:
        """SandboxError if the process is gone; SandboxTimeoutError if it stopped reading
        (the stream is then closed: part of ``data`` may have been written)."""
        try:
            async with docker_errors(self._container_id, deadline=self._deadline):
                await self._stream.write_in(data)
        except SandboxTimeoutError:
            await self.aclose()
            raise
        except (
            RuntimeError,
            ConnectionError,
            OSError,
            AssertionError,  # aiodocker asserts a transport: gone once the engine closed it
            aiohttp.ClientError,
        ) as exc:
            raise SandboxError(f"the attached process is gone: {exc!r}") from exc

    async def aclose(self) -> None:
        await _close(self._stream, self._deadline)


class DockerBackend:
    """One aiodocker client for the whole server; ``timeout`` is each call's deadline."""

    def __init__(self, url: str | None = None, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self._url = url
        self.timeout = timeout
        self._docker: aiodocker.Docker | None = None
        self._orphans: set[asyncio.Future[None]] = set()
        """Removals of containers created for a caller that was cancelled meanwhile."""

    @property
    def client(self) -> aiodocker.Docker:
        if self._docker is None:
            # Name the usual socket ourselves: when it is missing, aiodocker's own search
            # fails at construction, we would rather fail (and report) per request.
            url = self._url or os.environ.get("DOCKER_HOST") or DEFAULT_SOCKET
            try:
                self._docker = aiodocker.Docker(url=url)
            except (ValueError, aiodocker.DockerError) as exc:
                raise SandboxUnavailableError(f"docker engine address {url!r}: {exc}") from exc
        return self._docker

    async def close(self) -> None:
        await asyncio.gather(*self._orphans, return_exceptions=True)
        if self._docker is not None:
            await self._docker.close()
            self._docker = None

    async def ping(self) -> bool:
        try:
            async with docker_errors():
                await asyncio.wait_for(self.client.system.info(), timeout=5)
            return True
        except (SandboxError, TimeoutError):
            return False

    async def start_container(self, config: Mapping[str, Any]) -> str:
        """Create and start; a container that fails to start is removed, not left behind.

        A caller cancelled while the engine creates the container (a client cancelling a
        run) must not lose its id: the create goes on, shielded, and what it made is removed.
        """
        image = str(config.get("Image", ""))

        async def create() -> DockerContainer:
            async with docker_errors(image=image, deadline=self.timeout):
                return await self.client.containers.create(dict(config))

        creating = asyncio.ensure_future(create())
        try:
            container = await asyncio.shield(creating)
        except asyncio.CancelledError:
            orphan = asyncio.ensure_future(self._remove_when_created(creating))
            self._orphans.add(orphan)
            orphan.add_done_callback(self._orphans.discard)
            raise
        try:
            async with docker_errors(container.id, deadline=self.timeout):
                await container.start()
        except BaseException:
            await self.remove_container(container.id)
            raise
        return str(container.id)

    async def _remove_when_created(self, creating: asyncio.Future[DockerContainer]) -> None:
        try:
            container = await creating
        except (SandboxError, asyncio.CancelledError):
            return  # nothing was made
        await self.remove_container(container.id)

    async def ensure_running(self, container_id: str) -> None:
        """ContainerGoneError unless the container exists and runs; ContainerPausedError
        when it is paused (it still counts as running for Docker)."""
        async with docker_errors(container_id, deadline=self.timeout):
            info = await self.client.containers.container(container_id).show()
        state = info.get("State", {})
        if not state.get("Running"):
            raise ContainerGoneError(container_id, "container is not running")
        if state.get("Paused"):
            raise ContainerPausedError(container_id)

    async def remove_container(self, container_id: str) -> None:
        """Force-remove with its anonymous volumes; gone already is fine. A paused container
        is removed too, unless an exec hangs in it (then SandboxTimeoutError: it stays
        until thawed, and a later start's clean-up tries again)."""
        try:
            async with docker_errors(container_id, deadline=self.timeout):
                await self.client.containers.container(container_id).delete(force=True, v=True)
        except ContainerGoneError:
            pass
        except SandboxError as exc:
            if "already in progress" not in str(exc):
                raise

    async def labelled(self, labels: Mapping[str, str], *, running: bool = False) -> list[str]:
        """Ids of the containers carrying all these labels (with ``running``, only those
        still alive: running or paused)."""
        filters: dict[str, list[str]] = {"label": [f"{k}={v}" for k, v in labels.items()]}
        if running:
            filters["status"] = list(LIVE)
        async with docker_errors(deadline=self.timeout):
            containers = await self.client.containers.list(all=True, filters=json.dumps(filters))
        return [str(container.id) for container in containers]

    async def remove_labelled(self, labels: Mapping[str, str], keep: Collection[str] = ()) -> int:
        """Remove every container carrying all these labels but those in ``keep``; returns
        how many went. One that cannot be removed now is logged and left (the next start
        tries again)."""
        ids = [
            container_id for container_id in await self.labelled(labels) if container_id not in keep
        ]
        outcomes = await asyncio.gather(
            *(self.remove_container(container_id) for container_id in ids),
            return_exceptions=True,
        )
        for container_id, outcome in zip(ids, outcomes, strict=True):
            if isinstance(outcome, SandboxError):
                logger.warning("could not remove container {}: {}", container_id[:12], outcome)
            elif isinstance(outcome, BaseException):
                raise outcome
        return sum(outcome is None for outcome in outcomes)

    async def attach(
        self, container_id: str, argv: Sequence[str], *, user: str, workdir: str
    ) -> AttachedExec:
        """Start a long-lived exec with stdin attached (see ``AttachedExec``)."""
        async with docker_errors(container_id, deadline=self.timeout):
            container = self.client.containers.container(container_id)
            execution = await container.exec(list(argv), stdin=True, user=user, workdir=workdir)
            stream = execution.start()
            try:
                await stream.__aenter__()  # starts the exec now, once
            except BaseException:
                await _close(stream, self.timeout)
                raise
        return AttachedExec(stream, container_id, self.timeout)

    async def run_exec(
        self,
        container_id: str,
        argv: Sequence[str],
        *,
        user: str,
        env: Mapping[str, str],
        workdir: str,
        stdin: bytes | None,
        timeout: float,
        output: OutputBuffer,
        stdin_pipe: StdinPipe | None = None,
        cancel: asyncio.Event | None = None,
    ) -> ExecOutput:
        """Run argv (no shell), feeding ``output`` until it exits, times out, floods or
        ``cancel`` is set.

        On timeout, overflow or cancel the process is *not* killed here: the caller knows
        how to find every process the command started, the Docker API does not.
        """
        started = time.time()
        attach_stdin = stdin is not None or stdin_pipe is not None
        async with docker_errors(container_id, deadline=self.timeout):
            container = self.client.containers.container(container_id)
            execution = await container.exec(
                list(argv),
                stdin=attach_stdin,
                user=user,
                environment=dict(env),
                workdir=workdir,
            )
            # Entering the stream starts the exec once, before the stdin writer and the
            # reader both touch it (each would otherwise try to start it).
            stream = execution.start()
            try:
                await stream.__aenter__()
            except BaseException:
                await _close(stream, self.timeout)
                raise
        timed_out = cancelled = False
        try:
            # The command's own timeout ends the pump; the margin bounds what surrounds it.
            async with docker_errors(container_id, deadline=timeout + self.timeout):
                feeder = None
                if attach_stdin:
                    feeder = asyncio.create_task(_feed_stdin(stream, stdin or b"", stdin_pipe))
                try:
                    await asyncio.wait_for(_pump_until(stream, output, cancel), timeout)
                except TimeoutError:
                    timed_out = True
                except _Cancelled:
                    cancelled = True
                finally:
                    if feeder is not None:
                        feeder.cancel()
                        await asyncio.gather(feeder, return_exceptions=True)
        finally:
            await _close(stream, self.timeout)
        exit_code = None
        if not (timed_out or cancelled or output.overflowed):
            async with docker_errors(container_id, deadline=self.timeout):
                exit_code = await _exit_code(execution)
        return ExecOutput(exit_code, timed_out, output.overflowed, started, cancelled)


async def _close(stream: Stream, deadline: float) -> None:
    """Close an exec's stream, whatever state it is in, without waiting past ``deadline``."""
    with contextlib.suppress(Exception):
        async with asyncio.timeout(deadline):
            await stream.close()


class _Cancelled(Exception):
    """``cancel`` was set before the exec's output ended."""


async def _pump_until(stream: Stream, output: OutputBuffer, cancel: asyncio.Event | None) -> None:
    """``_pump``, abandoned with ``_Cancelled`` as soon as ``cancel`` is set."""
    if cancel is None:
        await _pump(stream, output)
        return
    pump = asyncio.ensure_future(_pump(stream, output))
    cancelled = asyncio.ensure_future(cancel.wait())
    try:
        await asyncio.wait({pump, cancelled}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (pump, cancelled):
            task.cancel()
        await asyncio.gather(pump, cancelled, return_exceptions=True)
    if pump.cancelled():
        raise _Cancelled()
    pump.result()  # it ended first (a Docker error raises here)


async def _pump(stream: Stream, output: OutputBuffer) -> None:
    while (message := await stream.read_out()) is not None:
        output.feed(message.stream, message.data)
        if output.overflowed:
            return


async def _exit_code(execution: Exec) -> int | None:
    """The exit code; the engine may need a moment after the stream ends to record it."""
    for _ in range(EXIT_CODE_POLLS):
        info = await execution.inspect()
        if not info.get("Running") and info.get("ExitCode") is not None:
            return int(info["ExitCode"])
        await asyncio.sleep(0.01)
    return None


async def _feed_stdin(stream: Stream, data: bytes, more: StdinPipe | None) -> None:
    """Write stdin (and what arrives on ``more`` until its EOF), then half-close so the
    process sees EOF while we keep reading."""
    try:
        if data:
            await stream.write_in(data)
        while more is not None and (chunk := await more.read()) is not None:
            await stream.write_in(chunk)
        # aiodocker has no half-close of its own; shutting the write side is what
        # `docker exec -i` does when its input ends.
        response = stream._resp
        transport = response.connection.transport if response and response.connection else None
        if transport is not None and transport.can_write_eof():
            transport.write_eof()
    except (ConnectionError, RuntimeError, OSError) as exc:  # the process exited first
        logger.debug("stdin not fully written: {}", exc)
