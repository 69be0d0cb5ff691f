"""Steps every throwaway-sandbox run shares: write the source, compile it if need be."""

from __future__ import annotations

import base64
import time
from collections.abc import Sequence

from codebeaker.api import CompileResult
from codebeaker.commands.shell import shell_result
from codebeaker.constants import WORKSPACE
from codebeaker.sandbox.driver import Driver, ProcessRequest
from codebeaker.settings import Settings

__all__ = ["compile_program", "write_source"]

MIN_COMPILE_SECONDS = 60.0  # a cold Go or Mono compile is slower than most programs it builds


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
