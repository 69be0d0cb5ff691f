"""``execution.run``: write, compile (if the language needs it) and run in a throwaway container."""

from __future__ import annotations

import asyncio
import base64
import secrets
import time
from dataclasses import dataclass
from typing import Any

from codebeaker.commands.shell import process_fields
from codebeaker.constants import WORKSPACE
from codebeaker.exceptions import LimitExceededError
from codebeaker.runtimes import Runtime
from codebeaker.sandbox.driver import Driver, ProcessRequest
from codebeaker.sessions.sandboxes import SandboxFactory
from codebeaker.settings import Settings

__all__ = ["OneShotRunner", "RunRequest"]

MIN_COMPILE_SECONDS = 60.0  # a cold Go or Mono compile is slower than most programs it builds


@dataclass(frozen=True)
class RunRequest:
    runtime: Runtime
    code: str
    stdin: str | None
    timeout_seconds: float
    memory_mb: int


class OneShotRunner:
    """At most ``max_concurrent_runs`` at once; ``run_queue_size`` more may wait their turn."""

    def __init__(self, sandboxes: SandboxFactory, settings: Settings) -> None:
        self._sandboxes = sandboxes
        self._settings = settings
        self._slots = asyncio.Semaphore(settings.max_concurrent_runs)
        self._waiting = 0

    async def run(self, request: RunRequest) -> dict[str, Any]:
        if self._slots.locked() and self._waiting >= self._settings.run_queue_size:
            raise LimitExceededError(
                "runs", "too many execution.run requests are waiting; try again shortly"
            )
        self._waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self._waiting -= 1
        try:
            return await self._run(request)
        finally:
            self._slots.release()

    async def _run(self, request: RunRequest) -> dict[str, Any]:
        started = time.perf_counter()
        driver = await self._sandboxes.start(
            request.runtime,
            kind="run",
            owner=f"run-{secrets.token_hex(8)}",
            memory_mb=request.memory_mb,
            cpu_limit=self._settings.default_cpu_limit,
        )
        try:
            result = await self._compile_and_run(driver, request)
        finally:
            await self._sandboxes.remove(driver)
        result["durationMs"] = round((time.perf_counter() - started) * 1000)
        return result

    async def _compile_and_run(self, driver: Driver, request: RunRequest) -> dict[str, Any]:
        runtime, limit = request.runtime, self._settings.output_limit_bytes
        await driver.file_op(
            "write",
            path=f"{WORKSPACE}/{runtime.source_file}",
            content=base64.b64encode(request.code.encode("utf-8", errors="surrogatepass")).decode(),
            mode="Create",
        )
        result: dict[str, Any] = {}
        if runtime.compile is not None:
            compile_timeout = min(
                max(request.timeout_seconds, MIN_COMPILE_SECONDS),
                self._settings.max_command_timeout_seconds,
            )
            began = time.perf_counter()
            compiled = await driver.run(
                ProcessRequest(runtime.compile, WORKSPACE, compile_timeout, limit)
            )
            fields = process_fields(compiled)
            result["compile"] = {
                "stdout": fields["stdout"],
                "stderr": fields["stderr"],
                "exitCode": fields["exitCode"],
                "durationMs": round((time.perf_counter() - began) * 1000),
            }
            if compiled.exit_code != 0:
                result.update(
                    stdout="",
                    stderr="",
                    exitCode=compiled.exit_code,
                    timedOut=False,
                    truncated=False,
                )
                return result
        stdin = request.stdin.encode("utf-8", errors="surrogatepass") if request.stdin else None
        ran = await driver.run(
            ProcessRequest(runtime.run, WORKSPACE, request.timeout_seconds, limit, stdin=stdin)
        )
        result.update(process_fields(ran))
        return result
