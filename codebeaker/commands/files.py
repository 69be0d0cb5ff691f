"""The file commands, carried out by the guest helper under the path rules."""

from __future__ import annotations

import base64
from typing import Any

from codebeaker.commands.models import (
    CopyFile,
    CreateDirectory,
    DeleteFile,
    ListDirectory,
    ReadFile,
    WriteFile,
)
from codebeaker.commands.paths import resolve
from codebeaker.exceptions import CommandFailedError
from codebeaker.sandbox.driver import Driver
from codebeaker.settings import Settings

__all__ = [
    "copy_file",
    "create_directory",
    "delete_file",
    "list_directory",
    "read_file",
    "write_file",
]


async def write_file(driver: Driver, command: WriteFile, settings: Settings) -> dict[str, Any]:
    data = command.data()
    if len(data) > settings.max_write_bytes:
        raise CommandFailedError(
            "file_too_large", f"{len(data)} bytes is over the {settings.max_write_bytes} byte limit"
        )
    return await driver.file_op(
        "write",
        path=resolve(command.path),
        content=base64.b64encode(data).decode("ascii"),
        mode=command.mode,
    )


async def read_file(driver: Driver, command: ReadFile, settings: Settings) -> dict[str, Any]:
    reply = await driver.file_op(
        "read",
        path=resolve(command.path),
        max_bytes=command.max_bytes or settings.read_file_limit_bytes,
    )
    if command.encoding == "utf8":
        reply["content"] = base64.b64decode(reply["content"]).decode("utf-8", errors="replace")
    reply["encoding"] = command.encoding
    return reply


async def create_directory(
    driver: Driver, command: CreateDirectory, settings: Settings
) -> dict[str, Any]:
    return await driver.file_op("mkdir", path=resolve(command.path))


async def copy_file(driver: Driver, command: CopyFile, settings: Settings) -> dict[str, Any]:
    return await driver.file_op(
        "copy",
        source=resolve(command.source),
        destination=resolve(command.destination),
        overwrite=command.overwrite,
    )


async def delete_file(driver: Driver, command: DeleteFile, settings: Settings) -> dict[str, Any]:
    return await driver.file_op("delete", path=resolve(command.path), recursive=command.recursive)


async def list_directory(
    driver: Driver, command: ListDirectory, settings: Settings
) -> dict[str, Any]:
    return await driver.file_op(
        "list",
        path=resolve(command.path),
        recursive=command.recursive,
        include_hidden=command.include_hidden,
    )
