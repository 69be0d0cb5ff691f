"""The exec-per-command driver: every command and file operation is one Docker exec."""

from __future__ import annotations

import asyncio
import json
import secrets
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
from codebeaker.exceptions import CommandFailedError, SandboxError
from codebeaker.sandbox.docker import DockerBackend, ExecOutput
from codebeaker.sandbox.driver import Driver, ProcessRequest, ProcessResult

__all__ = ["ExecDriver"]

GUEST_TIMEOUT = 60.0
GUEST_OUTPUT_LIMIT = 64 * 1024 * 1024
KILL_ATTEMPTS = 40  # a fork bomb can hold every pid for a while; keep trying to get one
START_FAILURE = b"OCI runtime exec failed"


class ExecDriver(Driver):
    def __init__(self, backend: DockerBackend, container_id: str) -> None:
        super().__init__(container_id)
        self._backend = backend

    async def run(self, request: ProcessRequest) -> ProcessResult:
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
        out = await self._guest({"op": op, **params})
        reply: dict[str, Any] = json.loads(out.stdout)
        if not reply.pop("ok"):
            raise CommandFailedError(reply["kind"], reply["message"])
        return reply

    async def _guest(self, request: dict[str, Any]) -> ExecOutput:
        out = await self._backend.run_exec(
            self.container_id,
            ("python3", "-I", "-S", GUEST_PATH),  # isolated: no PYTHON* env, no site, faster
            user=SANDBOX_USER,
            env={},
            workdir="/",
            stdin=json.dumps(request).encode(),
            timeout=GUEST_TIMEOUT,
            output_limit=GUEST_OUTPUT_LIMIT,
        )
        if out.exit_code != 0 or out.timed_out or out.overflowed:
            detail = (out.stdout + out.stderr)[-300:].decode(errors="replace").strip()
            raise SandboxError(f"guest helper failed ({request['op']}): {detail}")
        return out

    async def _kill(self, marker: str, since: float) -> None:
        """Kill the command's whole tree; retried because a fork bomb may hold every pid."""
        for attempt in range(KILL_ATTEMPTS):
            try:
                await self._guest({"op": "kill", "marker": marker, "since": since})
                return
            except SandboxError as exc:
                logger.debug("tree kill attempt {} failed: {}", attempt + 1, exc)
                await asyncio.sleep(0.25)
        logger.warning("could not kill every process of a command in {}", self.container_id[:12])


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
