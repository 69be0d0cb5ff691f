"""Runs one command against a driver and shapes the ``session.execute`` result."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from codebeaker.commands import files
from codebeaker.commands.models import (
    Command,
    CopyFile,
    CreateDirectory,
    DeleteFile,
    ExecuteShell,
    ListDirectory,
    ReadFile,
    WriteFile,
)
from codebeaker.commands.shell import CommandIO, execute_shell
from codebeaker.exceptions import CommandFailedError
from codebeaker.sandbox.driver import Driver
from codebeaker.settings import Settings

__all__ = ["CommandOutcome", "run_command"]

FileHandler = Callable[[Driver, Any, Settings], Awaitable[dict[str, Any]]]

FILE_HANDLERS: dict[type[Any], FileHandler] = {
    WriteFile: files.write_file,
    ReadFile: files.read_file,
    CreateDirectory: files.create_directory,
    CopyFile: files.copy_file,
    DeleteFile: files.delete_file,
    ListDirectory: files.list_directory,
}


@dataclass(frozen=True)
class CommandOutcome:
    success: bool
    result: dict[str, Any] | None
    error: str | None
    duration_ms: int

    def to_wire(self) -> dict[str, Any]:
        return {
            "success": self.success,
            "result": self.result,
            "error": self.error,
            "durationMs": self.duration_ms,
        }


async def run_command(
    driver: Driver, command: Command, settings: Settings, io: CommandIO | None = None
) -> CommandOutcome:
    """A command that ran and failed is an outcome, not an exception; Docker trouble raises."""
    started = time.perf_counter()
    result: dict[str, Any] | None
    try:
        if isinstance(command, ExecuteShell):
            result, error = await execute_shell(driver, command, settings, io or CommandIO())
        else:
            result, error = await FILE_HANDLERS[type(command)](driver, command, settings), None
    except CommandFailedError as exc:
        result, error = None, exc.message
    duration_ms = round((time.perf_counter() - started) * 1000)
    return CommandOutcome(error is None, result, error, duration_ms)
