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
    EXIT_TIMEOUT,
    GUEST_PATH,
    RUN_MARKER_ENV,
    SANDBOX_USER,
)
from codebeaker.exceptions import CommandFailedError, ContainerGoneError, SandboxError
from codebeaker.sandbox.docker import DockerBackend, ExecChannel, ExecOutput
from codebeaker.sandbox.driver import Driver, ProcessRequest, ProcessResult

__all__ = ["ExecDriver"]

GUEST_ARGV = ("python3", "-I", "-S", GUEST_PATH)  # isolated: no PYTHON* env, no site
GUEST_TIMEOUT = 60.0
GUEST_OUTPUT_LIMIT = 64 * 1024 * 1024
KILL_DEADLINE = 20.0  # fallback kill: how long to keep trying to get a pid from a fork bomb
KILL_ATTEMPT_TIMEOUT = 5.0
START_FAILURE = b"OCI runtime exec failed"


class ExecDriver(Driver):
    """Commands are one exec each. File operations and tree kills go to a resident guest
    (``guest.py serve``) started before the first command: it answers without a new exec,
    and, already running, it can kill a fork bomb that holds every free pid. Should user
    code kill it, it is restarted before the next command; meanwhile one-shot guest execs
    stand in."""

    def __init__(self, backend: DockerBackend, container_id: str) -> None:
        super().__init__(container_id)
        self._backend = backend
        self._resident: ExecChannel | None = None

    async def run(self, request: ProcessRequest) -> ProcessResult:
        await self._ensure_resident()  # before the command, so it is older than its tree
        marker = secrets.token_hex(8)
        out = await self._backend.run_exec(
            self.container_id,
            request.argv,
            user=SANDBOX_USER,
            env={**request.env, RUN_MARKER_ENV: marker},
            workdir=request.workdir,
            stdin=request.stdin,
            timeout=request.timeout,
            output_limit=request.output_limit,
        )
        if out.timed_out or out.overflowed:
            await self._kill(marker, out.started)
        return _result(request, out)

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
            self._resident = await self._backend.open_channel(
                self.container_id, (*GUEST_ARGV, "serve"), user=SANDBOX_USER, workdir="/"
            )
        except ContainerGoneError:
            raise
        except SandboxError as exc:  # e.g. no free pid right now: one-shot execs will do
            logger.debug("resident guest not started in {}: {}", self.container_id[:12], exc)
            self._resident = None

    async def _guest(self, request: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Ask the resident guest, or a one-shot guest exec when it is not there."""
        line = json.dumps(request).encode()
        if self._resident is not None and not self._resident.closed:
            try:
                return dict(json.loads(await self._resident.request(line, timeout)))
            except SandboxError as exc:
                logger.debug("resident guest failed, using an exec: {}", exc)
        out = await self._backend.run_exec(
            self.container_id,
            GUEST_ARGV,
            user=SANDBOX_USER,
            env={},
            workdir="/",
            stdin=line,
            timeout=timeout,
            output_limit=GUEST_OUTPUT_LIMIT,
        )
        if out.exit_code != 0 or out.timed_out or out.overflowed:
            detail = (out.stdout + out.stderr)[-300:].decode(errors="replace").strip()
            raise SandboxError(f"guest helper failed ({request['op']}): {detail}")
        return dict(json.loads(out.stdout))

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
                if time.monotonic() >= deadline:
                    logger.warning(
                        "processes of a command in {} survived: {}", self.container_id[:12], exc
                    )
                    return
                await asyncio.sleep(0.1)


def _result(request: ProcessRequest, out: ExecOutput) -> ProcessResult:
    if out.timed_out:
        return ProcessResult(
            out.stdout,
            out.stderr,
            EXIT_TIMEOUT,
            timed_out=True,
            error=f"timeout: command exceeded {request.timeout:g}s and was killed",
        )
    if out.overflowed:
        return ProcessResult(
            out.stdout,
            out.stderr,
            EXIT_KILLED,
            truncated=True,
            error=f"output_limit_exceeded: output passed {request.output_limit} bytes per stream",
        )
    exit_code = out.exit_code if out.exit_code is not None else EXIT_KILLED
    if exit_code == 126 and out.stdout.startswith(START_FAILURE):
        return _start_failure(request, out.stdout.decode(errors="replace"))
    return ProcessResult(out.stdout, out.stderr, exit_code)


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
