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
from aiodocker.execs import Exec
from aiodocker.stream import Stream
from loguru import logger

from codebeaker.exceptions import (
    ContainerGoneError,
    ImageMissingError,
    SandboxError,
    SandboxUnavailableError,
)

__all__ = ["DockerBackend", "ExecChannel", "ExecOutput", "docker_errors"]

STDOUT, STDERR = 1, 2
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
        if exc.status == 409 and container_id and "not running" in message:
            raise ContainerGoneError(container_id, "container is not running") from exc
        raise SandboxError(f"docker: {message}") from exc
    except (aiohttp.ClientConnectionError, ConnectionError, FileNotFoundError) as exc:
        raise SandboxUnavailableError(f"docker engine unreachable: {exc}") from exc


@dataclass
class ExecOutput:
    """What one exec produced, each stream cut at the cap it was given."""

    stdout: bytes
    stderr: bytes
    exit_code: int | None
    timed_out: bool
    overflowed: bool
    """A stream passed its cap; the exec was abandoned there and must be killed."""
    started: float


class _Collector:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.parts: dict[int, bytearray] = {STDOUT: bytearray(), STDERR: bytearray()}
        self.overflowed = False

    def feed(self, stream: int, data: bytes) -> None:
        buffer = self.parts.get(stream, self.parts[STDERR])
        room = self.limit - len(buffer)
        buffer += data[: max(room, 0)]
        if len(data) > room:
            self.overflowed = True


class ExecChannel:
    """A long-lived exec spoken to in lines: we write its stdin, a task reads its stdout.

    ``closed`` turns true as soon as the process is gone (killed, container removed), so
    the owner knows to start a new one before relying on it.
    """

    def __init__(self, stream: Stream) -> None:
        self._stream = stream
        self._lines: asyncio.Queue[bytes] = asyncio.Queue()
        self._lock = asyncio.Lock()
        self._reader = asyncio.create_task(self._read())

    @property
    def closed(self) -> bool:
        return self._reader.done()

    async def _read(self) -> None:
        buffer = bytearray()
        with contextlib.suppress(aiodocker.DockerError, aiohttp.ClientError, OSError):
            while (message := await self._stream.read_out()) is not None:
                if message.stream != STDOUT:
                    continue
                buffer += message.data
                while (end := buffer.find(b"\n")) >= 0:
                    self._lines.put_nowait(bytes(buffer[:end]))
                    del buffer[: end + 1]

    async def request(self, line: bytes, timeout: float) -> bytes:
        """One line out, one line back; SandboxError if the process is gone or silent."""
        async with self._lock:
            if self.closed:
                raise SandboxError("the resident process is gone")
            try:
                await self._stream.write_in(line + b"\n")
            except (RuntimeError, ConnectionError, OSError, aiohttp.ClientError) as exc:
                raise SandboxError(f"the resident process is gone: {exc}") from exc
            reply = asyncio.ensure_future(self._lines.get())
            await asyncio.wait(
                {reply, self._reader}, timeout=timeout, return_when="FIRST_COMPLETED"
            )
            if not reply.done():
                reply.cancel()
                await self.aclose()  # a late answer would pair with the next question
                raise SandboxError("the resident process did not answer")
            return reply.result()

    async def aclose(self) -> None:
        self._reader.cancel()
        with contextlib.suppress(Exception):
            await self._stream.close()


class DockerBackend:
    """One aiodocker client for the whole server."""

    def __init__(self, url: str | None = None) -> None:
        self._url = url
        self._docker: aiodocker.Docker | None = None

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
        """Create and start; a container that fails to start is removed, not left behind."""
        image = str(config.get("Image", ""))
        async with docker_errors(image=image):
            container = await self.client.containers.create(dict(config))
        try:
            async with docker_errors(container.id):
                await container.start()
        except BaseException:
            await self.remove_container(container.id)
            raise
        return str(container.id)

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

    async def open_channel(
        self, container_id: str, argv: Sequence[str], *, user: str, workdir: str
    ) -> ExecChannel:
        """Start a long-lived exec with stdin attached (see ``ExecChannel``)."""
        async with docker_errors(container_id):
            container = self.client.containers.container(container_id)
            execution = await container.exec(list(argv), stdin=True, user=user, workdir=workdir)
            stream = execution.start()
            await stream.__aenter__()  # starts the exec now, once
        return ExecChannel(stream)

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
        output_limit: int,
    ) -> ExecOutput:
        """Run argv (no shell) and collect its output until it exits, times out or floods.

        On timeout or overflow the process is *not* killed here: the caller knows how to
        find every process the command started, the Docker API does not.
        """
        collector = _Collector(output_limit)
        started = time.time()
        async with docker_errors(container_id):
            container = self.client.containers.container(container_id)
            execution = await container.exec(
                list(argv),
                stdin=stdin is not None,
                user=user,
                environment=dict(env),
                workdir=workdir,
            )
            timed_out = False
            # Entering the stream starts the exec once, before the stdin writer and the
            # reader both touch it (each would otherwise try to start it).
            async with execution.start() as stream:
                try:
                    await asyncio.wait_for(self._pump(stream, stdin, collector), timeout)
                except TimeoutError:
                    timed_out = True
            exit_code = None
            if not (timed_out or collector.overflowed):
                exit_code = await _exit_code(execution)
        return ExecOutput(
            stdout=bytes(collector.parts[STDOUT]),
            stderr=bytes(collector.parts[STDERR]),
            exit_code=exit_code,
            timed_out=timed_out,
            overflowed=collector.overflowed,
            started=started,
        )

    @staticmethod
    async def _pump(stream: Stream, stdin: bytes | None, collector: _Collector) -> None:
        feeder = asyncio.create_task(_feed_stdin(stream, stdin)) if stdin is not None else None
        try:
            while (message := await stream.read_out()) is not None:
                collector.feed(message.stream, message.data)
                if collector.overflowed:
                    return
        finally:
            if feeder is not None:
                feeder.cancel()
                await asyncio.gather(feeder, return_exceptions=True)


async def _exit_code(execution: Exec) -> int | None:
    """The exit code; the engine may need a moment after the stream ends to record it."""
    for _ in range(50):
        info = await execution.inspect()
        if not info.get("Running") and info.get("ExitCode") is not None:
            return int(info["ExitCode"])
        await asyncio.sleep(0.01)
    return None


async def _feed_stdin(stream: Stream, data: bytes) -> None:
    """Write stdin, then half-close so the process sees EOF while we keep reading."""
    try:
        if data:
            await stream.write_in(data)
        # aiodocker has no half-close of its own; shutting the write side is what
        # `docker exec -i` does when its input ends.
        response = stream._resp
        transport = response.connection.transport if response and response.connection else None
        if transport is not None and transport.can_write_eof():
            transport.write_eof()
    except (ConnectionError, RuntimeError, OSError) as exc:  # the process exited first
        logger.debug("stdin not fully written: {}", exc)
