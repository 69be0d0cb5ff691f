"""The exec driver: one Docker exec per command, file operations via a resident guest."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from typing import Any

from loguru import logger

from codebeaker.constants import (
    EXIT_KILLED,
    EXIT_NOT_FOUND,
    GUEST_PATH,
    RUN_MARKER_ENV,
    SANDBOX_USER,
)
from codebeaker.exceptions import (
    CommandFailedError,
    ContainerGoneError,
    ContainerPausedError,
    SandboxError,
    SandboxTimeoutError,
)
from codebeaker.sandbox.docker import AttachedExec, DockerBackend, ExecOutput
from codebeaker.sandbox.driver import (
    Driver,
    OutputBuffer,
    OutputSink,
    ProcessRequest,
    ProcessResult,
    StdinPipe,
    finished,
)

__all__ = ["ExecDriver"]

GUEST_ARGV = ("python3", "-I", "-S", GUEST_PATH)  # isolated: no PYTHON* env, no site
GUEST_TIMEOUT = 60.0
GUEST_OUTPUT_LIMIT = 64 * 1024 * 1024
KILL_DEADLINE = 20.0  # fallback kill: how long to keep trying to get a pid from a fork bomb
KILL_ATTEMPT_TIMEOUT = 5.0
START_FAILURE = b"OCI runtime exec failed"
HOPELESS = (ContainerGoneError, ContainerPausedError, SandboxTimeoutError)
"""Failures no retry or one-shot exec can get past: the container is gone, frozen, or the
engine does not answer about it."""


class GuestChannel:
    """The resident guest, spoken to in lines: one JSON request out, one reply back.

    ``closed`` turns true as soon as the process is gone (killed, container removed), so
    the owner knows to start a new one before relying on it.
    """

    def __init__(self, attached: AttachedExec) -> None:
        self._attached = attached
        self._lines: asyncio.Queue[bytes] = asyncio.Queue()
        self._lock = asyncio.Lock()
        self._reader = asyncio.create_task(self._read())

    @property
    def closed(self) -> bool:
        return self._reader.done()

    async def _read(self) -> None:
        buffer = bytearray()
        while (chunk := await self._attached.read()) is not None:
            buffer += chunk
            while (end := buffer.find(b"\n")) >= 0:
                self._lines.put_nowait(bytes(buffer[:end]))
                del buffer[: end + 1]

    async def request(self, line: bytes, timeout: float) -> bytes:
        """One line out, one line back; SandboxError if the process is gone or silent."""
        async with self._lock:
            if self.closed:
                raise SandboxError("the resident guest is gone")
            await self._attached.write(line + b"\n")
            reply = asyncio.ensure_future(self._lines.get())
            await asyncio.wait(
                {reply, self._reader}, timeout=timeout, return_when="FIRST_COMPLETED"
            )
            if not reply.done():
                reply.cancel()
                await self.aclose()  # a late answer would pair with the next question
                raise SandboxError("the resident guest did not answer")
            return reply.result()

    async def aclose(self) -> None:
        self._reader.cancel()
        await self._attached.aclose()


class ExecDriver(Driver):
    """The fallback driver, for images that cannot host the agent: commands are one exec
    each (about 45 ms). File operations and tree kills go to a resident guest
    (``guest.py serve``) started before the first command: it answers without a new exec,
    and, already running, it can kill a fork bomb that holds every free pid. Should user
    code kill it, it is restarted before the next command; meanwhile one-shot guest execs
    stand in."""

    def __init__(self, backend: DockerBackend, container_id: str) -> None:
        super().__init__(container_id)
        self._backend = backend
        self._resident: GuestChannel | None = None

    async def start(self) -> None:
        await self._ensure_resident()

    async def run(
        self,
        request: ProcessRequest,
        *,
        on_output: OutputSink | None = None,
        stdin: StdinPipe | None = None,
    ) -> ProcessResult:
        await self._ensure_resident()  # before the command, so it is older than its tree
        marker = secrets.token_hex(8)
        output = OutputBuffer(request.output_limit, on_output)
        out = await self._backend.run_exec(
            self.container_id,
            request.argv,
            user=SANDBOX_USER,
            env={**request.env, RUN_MARKER_ENV: marker},
            workdir=request.workdir,
            stdin=request.stdin,
            timeout=request.timeout,
            output=output,
            stdin_pipe=stdin,
            cancel=request.cancel,
        )
        if out.timed_out or out.overflowed or out.cancelled:
            await self._kill(marker, out.started)
        return _result(request, output, out)

    async def file_op(self, op: str, **params: Any) -> dict[str, Any]:
        await self._ensure_resident()
        reply = await self._guest({"op": op, **params}, GUEST_TIMEOUT)
        if not reply.pop("ok"):
            raise CommandFailedError(reply["kind"], reply["message"])
        return reply

    async def aclose(self) -> None:
        if self._resident is not None:
            await self._resident.aclose()
            self._resident = None

    async def _ensure_resident(self) -> None:
        if self._resident is not None and not self._resident.closed:
            return
        try:
            attached = await self._backend.attach(
                self.container_id, (*GUEST_ARGV, "serve"), user=SANDBOX_USER, workdir="/"
            )
            self._resident = GuestChannel(attached)
        except HOPELESS:
            raise
        except SandboxError as exc:  # e.g. no free pid right now: one-shot execs will do
            logger.debug("resident guest not started in {}: {}", self.container_id[:12], exc)
            self._resident = None

    async def _guest(self, request: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Ask the resident guest, or a one-shot guest exec when it is not there."""
        line = json.dumps(request).encode()
        if self._resident is not None and not self._resident.closed:
            try:
                return dict(json.loads(await self._ask_resident(line, timeout)))
            except HOPELESS:
                raise
            except SandboxError as exc:
                logger.debug("resident guest failed, using an exec: {}", exc)
        output = OutputBuffer(GUEST_OUTPUT_LIMIT)
        out = await self._backend.run_exec(
            self.container_id,
            GUEST_ARGV,
            user=SANDBOX_USER,
            env={},
            workdir="/",
            stdin=line,
            timeout=timeout,
            output=output,
        )
        if out.exit_code != 0 or out.timed_out or out.overflowed:
            detail = (output.stdout + output.stderr)[-300:].decode(errors="replace").strip()
            raise SandboxError(f"guest helper failed ({request['op']}): {detail}")
        return dict(json.loads(output.stdout))

    async def _ask_resident(self, line: bytes, timeout: float) -> bytes:
        """The resident guest's answer. Silent for as long as a Docker call may take, it
        may be frozen (``docker pause``): then ContainerPausedError at once, not after the
        full ``timeout``."""
        assert self._resident is not None
        resident = self._resident
        asking = asyncio.ensure_future(resident.request(line, timeout))
        await asyncio.wait({asking}, timeout=min(self._backend.timeout, timeout))
        if not asking.done():
            try:
                await self._backend.ensure_running(self.container_id)
            except BaseException:
                asking.cancel()
                await resident.aclose()  # a late answer would pair with the next question
                await asyncio.gather(asking, return_exceptions=True)
                raise
        return await asking

    async def _kill(self, marker: str, since: float) -> None:
        """Kill the command's whole tree; a one-shot exec may need retries under a fork
        bomb (no pid to start in), so those go on until ``KILL_DEADLINE``."""
        request = {"op": "kill", "marker": marker, "since": since}
        deadline = time.monotonic() + KILL_DEADLINE
        while True:
            try:
                await self._guest(request, KILL_ATTEMPT_TIMEOUT)
                return
            except SandboxError as exc:
                if isinstance(exc, HOPELESS) or time.monotonic() >= deadline:
                    logger.warning(
                        "processes of a command in {} survived: {}", self.container_id[:12], exc
                    )
                    return
                await asyncio.sleep(0.1)


def _result(request: ProcessRequest, output: OutputBuffer, out: ExecOutput) -> ProcessResult:
    exit_code = out.exit_code if out.exit_code is not None else EXIT_KILLED
    if exit_code == 126 and output.stdout.startswith(START_FAILURE):
        return _start_failure(request, output.stdout.decode(errors="replace"))
    return finished(request, output, exit_code, timed_out=out.timed_out, cancelled=out.cancelled)


def _start_failure(request: ProcessRequest, message: str) -> ProcessResult:
    """Turn runc's "exec failed" text into a stable kind, keeping nothing of it on stdout."""
    if "executable file not found" in message or "no such file or directory" in message:
        if "chdir to cwd" in message:
            kind, detail, code = "file_not_found", f"working directory {request.workdir}", 126
        else:
            kind, detail, code = "command_not_found", request.argv[0], EXIT_NOT_FOUND
    elif "permission denied" in message:
        kind, detail, code = "permission_denied", request.argv[0], 126
    else:
        kind, detail, code = "start_failed", message.strip().splitlines()[0][:200], 126
    return ProcessResult(b"", message.strip().encode(), code, error=f"{kind}: {detail}")
