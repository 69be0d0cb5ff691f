"""The file commands, carried out by the guest helper under the path rules.

The guest (stdlib only, inside the container) answers plain dicts; they become typed
results here, at the boundary.
"""

from __future__ import annotations

import base64

from codebeaker_client.models.commands import (
    CopyFile,
    CopyFileResult,
    CreateDirectory,
    CreateDirectoryResult,
    DeleteFile,
    DeleteFileResult,
    ListDirectory,
    ListDirectoryResult,
    ReadFile,
    ReadFileResult,
    WriteFile,
    WriteFileResult,
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


async def write_file(driver: Driver, command: WriteFile, settings: Settings) -> WriteFileResult:
    data = command.data()
    if len(data) > settings.max_write_bytes:
        raise CommandFailedError(
            "file_too_large", f"{len(data)} bytes is over the {settings.max_write_bytes} byte limit"
        )
    reply = await driver.file_op(
        "write",
        path=resolve(command.path),
        content=base64.b64encode(data).decode("ascii"),
        mode=command.mode,
    )
    return WriteFileResult.model_validate(reply)


async def read_file(driver: Driver, command: ReadFile, settings: Settings) -> ReadFileResult:
    reply = await driver.file_op(
        "read",
        path=resolve(command.path),
        max_bytes=command.max_bytes or settings.read_file_limit_bytes,
    )
    content = reply["content"]
    if command.encoding == "utf8":
        content = base64.b64decode(content).decode("utf-8", errors="replace")
    return ReadFileResult.model_validate(
        {**reply, "content": content, "encoding": command.encoding}
    )


async def create_directory(
    driver: Driver, command: CreateDirectory, settings: Settings
) -> CreateDirectoryResult:
    reply = await driver.file_op("mkdir", path=resolve(command.path))
    return CreateDirectoryResult.model_validate(reply)


async def copy_file(driver: Driver, command: CopyFile, settings: Settings) -> CopyFileResult:
    reply = await driver.file_op(
        "copy",
        source=resolve(command.source),
        destination=resolve(command.destination),
        overwrite=command.overwrite,
    )
    return CopyFileResult.model_validate(reply)


async def delete_file(driver: Driver, command: DeleteFile, settings: Settings) -> DeleteFileResult:
    reply = await driver.file_op("delete", path=resolve(command.path), recursive=command.recursive)
    return DeleteFileResult.model_validate(reply)


async def list_directory(
    driver: Driver, command: ListDirectory, settings: Settings
) -> ListDirectoryResult:
    reply = await driver.file_op(
        "list",
        path=resolve(command.path),
        recursive=command.recursive,
        include_hidden=command.include_hidden,
    )
    return ListDirectoryResult.model_validate(reply)
