"""Steps every throwaway-sandbox run shares (``execution.run`` and interactive runs): a
sandbox held for one run and removed after it, writing the source, compiling it."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from codebeaker_client.models import CompileResult

from codebeaker.commands.shell import shell_result
from codebeaker.constants import WORKSPACE
from codebeaker.runtimes import Runtime
from codebeaker.sandbox.driver import Driver, ProcessRequest
from codebeaker.sessions.sandboxes import SandboxFactory
from codebeaker.sessions.slots import RunSlots
from codebeaker.settings import Settings

__all__ = ["compile_program", "in_throwaway_sandbox", "write_source"]

T = TypeVar("T")

MIN_COMPILE_SECONDS = 60.0  # a cold Go or Mono compile is slower than most programs it builds


async def in_throwaway_sandbox(
    sandboxes: SandboxFactory,
    slots: RunSlots,
    runtime: Runtime,
    work: Callable[[Driver], Awaitable[T]],
    *,
    kind: str,
    owner: str,
    memory_mb: int,
    cpu_limit: float,
) -> T:
    """Run ``work`` in a fresh sandbox while holding a slot the caller acquired. The sandbox
    is removed afterwards in the background and the slot freed only once it is gone, so
    slots bound live containers too; when cancelled (killed), the sandbox goes first."""
    try:
        driver = await sandboxes.start(
            runtime, kind=kind, owner=owner, memory_mb=memory_mb, cpu_limit=cpu_limit
        )
    except BaseException:
        slots.release()
        raise
    try:
        result = await work(driver)
    except asyncio.CancelledError:
        try:  # its processes go before anyone hears it ended
            await asyncio.shield(sandboxes.remove_quietly(driver))
        finally:
            slots.release()
        raise
    except BaseException:
        sandboxes.discard(driver, then=slots.release)
        raise
    sandboxes.discard(driver, then=slots.release)  # the reply need not wait for it
    return result


async def write_source(driver: Driver, filename: str, code: str) -> None:
    await driver.file_op(
        "write",
        path=f"{WORKSPACE}/{filename}",
        content=base64.b64encode(code.encode("utf-8", errors="surrogatepass")).decode(),
        mode="Create",
    )


async def compile_program(
    driver: Driver, argv: Sequence[str], timeout_seconds: float, settings: Settings
) -> CompileResult:
    """Compile with at least ``MIN_COMPILE_SECONDS`` (never past the command maximum),
    however short the program's own timeout is."""
    timeout = min(max(timeout_seconds, MIN_COMPILE_SECONDS), settings.max_command_timeout_seconds)
    began = time.perf_counter()
    process = await driver.run(
        ProcessRequest(tuple(argv), WORKSPACE, timeout, settings.output_limit_bytes)
    )
    output = shell_result(process)
    return CompileResult(
        stdout=output.stdout,
        stderr=output.stderr,
        exit_code=output.exit_code,
        duration_ms=round((time.perf_counter() - began) * 1000),
    )
