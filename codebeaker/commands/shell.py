"""``execute_shell``: one argv, no shell, as the sandbox user."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field

from codebeaker_client.models.commands import ExecuteShell, ShellResult

from codebeaker.commands.paths import resolve
from codebeaker.sandbox.driver import (
    Driver,
    OutputSink,
    ProcessRequest,
    ProcessResult,
    StdinPipe,
)
from codebeaker.settings import Settings

__all__ = ["CommandIO", "execute_shell", "shell_result"]


@dataclass(frozen=True)
class CommandIO:
    """What a session adds to a command: its environment, for a streamed command where
    output goes as it arrives and where live input comes from, and what stops it early."""

    env: Mapping[str, str] = field(default_factory=dict)
    on_output: OutputSink | None = None
    stdin: StdinPipe | None = None
    cancel: asyncio.Event | None = None
    """Set by ``session.cancel``: a running ``execute_shell`` is killed with its tree."""


def shell_result(result: ProcessResult) -> ShellResult:
    """A finished process as clients see it; invalid UTF-8 becomes U+FFFD."""
    return ShellResult(
        stdout=result.stdout.decode("utf-8", errors="replace"),
        stderr=result.stderr.decode("utf-8", errors="replace"),
        exit_code=result.exit_code,
        timed_out=result.timed_out,
        truncated=result.truncated,
        cancelled=result.cancelled,
    )


async def execute_shell(
    driver: Driver, command: ExecuteShell, settings: Settings, io: CommandIO
) -> tuple[ShellResult, str | None]:
    """Returns the result fields and the one-line error (None on success)."""
    text = command.stdin
    request = ProcessRequest(
        argv=(command.command_name, *command.args),
        workdir=resolve(command.working_directory),
        timeout=command.timeout_seconds or settings.default_command_timeout_seconds,
        output_limit=settings.output_limit_bytes,
        env={**io.env, **command.env},
        stdin=None if text is None else text.encode("utf-8", errors="surrogatepass"),
        cancel=io.cancel,
    )
    result = await driver.run(request, on_output=io.on_output, stdin=io.stdin)
    error = result.error
    if error is None and result.exit_code != 0:
        error = f"nonzero_exit: {command.command_name} exited with code {result.exit_code}"
    return shell_result(result), error
