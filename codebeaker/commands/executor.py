"""Runs one command against a driver and shapes the ``session.execute`` result."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from codebeaker_client.models.commands import (
    Command,
    CommandOutcome,
    CommandResult,
    CopyFile,
    CreateDirectory,
    DeleteFile,
    ExecuteShell,
    ListDirectory,
    ReadFile,
    WriteFile,
)

from codebeaker.commands import files
from codebeaker.commands.shell import CommandIO, execute_shell
from codebeaker.exceptions import CommandFailedError
from codebeaker.sandbox.driver import Driver
from codebeaker.settings import Settings

__all__ = ["run_command"]

FileHandler = Callable[[Driver, Any, Settings], Awaitable[CommandResult]]

FILE_HANDLERS: dict[type[Any], FileHandler] = {
    WriteFile: files.write_file,
    ReadFile: files.read_file,
    CreateDirectory: files.create_directory,
    CopyFile: files.copy_file,
    DeleteFile: files.delete_file,
    ListDirectory: files.list_directory,
}


async def run_command(
    driver: Driver, command: Command, settings: Settings, io: CommandIO | None = None
) -> CommandOutcome:
    """A command that ran and failed is an outcome, not an exception; Docker trouble raises."""
    started = time.perf_counter()
    result: CommandResult | None
    try:
        if isinstance(command, ExecuteShell):
            result, error = await execute_shell(driver, command, settings, io or CommandIO())
        else:
            result, error = await FILE_HANDLERS[type(command)](driver, command, settings), None
    except CommandFailedError as exc:
        result, error = None, exc.message
    duration_ms = round((time.perf_counter() - started) * 1000)
    return CommandOutcome(
        success=error is None, result=result, error=error, duration_ms=duration_ms
    )
