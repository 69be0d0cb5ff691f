"""The Docker engine, as CodeBeaker uses it: containers by label, and execs with capped output.

This is the only module that touches aiodocker; its errors never leave it untranslated.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import AsyncIterator, Mapping, Sequence
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
    ImageMissingError,
    SandboxError,
    SandboxUnavailableError,
)
from codebeaker.sandbox.driver import OutputBuffer, StdinPipe

__all__ = ["AttachedExec", "DockerBackend", "ExecOutput", "docker_errors"]

STDOUT = 1
STDERR_TAIL = 4096
DEFAULT_SOCKET = "unix:///var/run/docker.sock"
CONNECT_FAILED = 900  # the status aiodocker gives "Cannot connect to Docker Engine"


@asynccontextmanager
async def docker_errors(container_id: str = "", image: str = "") -> AsyncIterator[None]:
    """Translate aiodocker/aiohttp failures into CodeBeaker's exceptions."""
    try:
        yield
    except aiodocker.DockerError as exc:
        message = str(exc.message)
        if exc.status == CONNECT_FAILED:
            raise SandboxUnavailableError(f"docker engine unreachable: {message}") from exc
        if exc.status == 404 and image and "image" in message.lower():
            raise ImageMissingError(image) from exc
        if exc.status == 404 and container_id:
            raise ContainerGoneError(container_id, "container was removed") from exc
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
    """

    def __init__(self, stream: Stream) -> None:
        self._stream = stream
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
        try:
            await self._stream.write_in(data)
        except (RuntimeError, ConnectionError, OSError, aiohttp.ClientError) as exc:
            raise SandboxError(f"the attached process is gone: {exc}") from exc

    async def aclose(self) -> None:
        with contextlib.suppress(Exception):
            await self._stream.close()


class DockerBackend:
    """One aiodocker client for the whole server."""

    def __init__(self, url: str | None = None) -> None:
        self._url = url
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
            async with docker_errors(image=image):
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
            async with docker_errors(container.id):
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
        """ContainerGoneError unless the container exists and runs."""
        async with docker_errors(container_id):
            info = await self.client.containers.container(container_id).show()
        if not info.get("State", {}).get("Running"):
            raise ContainerGoneError(container_id, "container is not running")

    async def remove_container(self, container_id: str) -> None:
        """Force-remove with its anonymous volumes; gone already is fine."""
        try:
            async with docker_errors(container_id):
                await self.client.containers.container(container_id).delete(force=True, v=True)
        except ContainerGoneError:
            pass
        except SandboxError as exc:
            if "already in progress" not in str(exc):
                raise

    async def labelled(self, labels: Mapping[str, str], *, running: bool = False) -> list[str]:
        """Ids of the containers carrying all these labels (only running ones if asked)."""
        filters: dict[str, list[str]] = {"label": [f"{k}={v}" for k, v in labels.items()]}
        if running:
            filters["status"] = ["running"]
        async with docker_errors():
            containers = await self.client.containers.list(all=True, filters=json.dumps(filters))
        return [str(container.id) for container in containers]

    async def remove_labelled(self, labels: Mapping[str, str]) -> int:
        """Remove every container carrying all these labels; returns how many."""
        ids = await self.labelled(labels)
        await asyncio.gather(*(self.remove_container(container_id) for container_id in ids))
        return len(ids)

    async def attach(
        self, container_id: str, argv: Sequence[str], *, user: str, workdir: str
    ) -> AttachedExec:
        """Start a long-lived exec with stdin attached (see ``AttachedExec``)."""
        async with docker_errors(container_id):
            container = self.client.containers.container(container_id)
            execution = await container.exec(list(argv), stdin=True, user=user, workdir=workdir)
            stream = execution.start()
            await stream.__aenter__()  # starts the exec now, once
        return AttachedExec(stream)

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
        async with docker_errors(container_id):
            container = self.client.containers.container(container_id)
            attach_stdin = stdin is not None or stdin_pipe is not None
            execution = await container.exec(
                list(argv),
                stdin=attach_stdin,
                user=user,
                environment=dict(env),
                workdir=workdir,
            )
            timed_out = cancelled = False
            # Entering the stream starts the exec once, before the stdin writer and the
            # reader both touch it (each would otherwise try to start it).
            async with execution.start() as stream:
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
            exit_code = None
            if not (timed_out or cancelled or output.overflowed):
                exit_code = await _exit_code(execution)
        return ExecOutput(exit_code, timed_out, output.overflowed, started, cancelled)


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
    for _ in range(50):
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
