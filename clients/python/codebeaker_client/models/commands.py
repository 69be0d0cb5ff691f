"""The commands of ``session.execute`` and their results: one pydantic model each.

Commands are told apart by ``type``. Wire names are camelCase; snake_case and the spec's
legacy aliases are accepted too.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, ValidationInfo, field_validator

from codebeaker_client.models.wire import (
    WireModel,
    at_most,
    no_nul,
    unicode_text,
    unset,
    validate_env,
)

__all__ = [
    "Command",
    "CommandOutcome",
    "CommandResult",
    "CopyFile",
    "CopyFileResult",
    "CreateDirectory",
    "CreateDirectoryResult",
    "DeleteFile",
    "DeleteFileResult",
    "DirectoryEntry",
    "ExecuteShell",
    "ListDirectory",
    "ListDirectoryResult",
    "ReadFile",
    "ReadFileResult",
    "ShellResult",
    "WriteFile",
    "WriteFileResult",
]

Encoding = Literal["utf8", "base64"]
NonEmptyPath = Annotated[str, Field(min_length=1, max_length=4096)]
RawName = Annotated[str | None, Field(exclude_if=unset)]
"""Beside a name or path the server echoes: when that name is not valid UTF-8 (file names
are bytes), the name is shown with U+FFFD for each bad byte and this field carries the
raw bytes in base64. Absent (None) when the name is valid UTF-8."""


class WriteFile(WireModel):
    """Create, replace or append to a file; parent directories are created."""

    type: Literal["write_file"]
    path: NonEmptyPath
    encoding: Encoding = "utf8"
    content: str
    """Text (``utf8``) or base64 of the bytes (``base64``)."""
    mode: Literal["Create", "Append", "CreateNew"] = "Create"
    """``Overwrite`` is accepted as ``Create``."""

    _path = field_validator("path")(no_nul)

    @field_validator("mode", mode="before")
    @classmethod
    def _legacy_mode(cls, value: object) -> object:
        return "Create" if value == "Overwrite" else value

    @field_validator("content")
    @classmethod
    def _decodable(cls, value: str, info: ValidationInfo) -> str:
        if info.data.get("encoding") == "base64":
            try:
                base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise ValueError(f"not valid base64: {exc}") from None
        return value

    def data(self) -> bytes:
        if self.encoding == "base64":
            return base64.b64decode(self.content)
        return self.content.encode("utf-8", errors="surrogatepass")


class ReadFile(WireModel):
    """Read a regular file, cut at ``maxBytes``."""

    type: Literal["read_file"]
    path: NonEmptyPath
    encoding: Encoding = "utf8"
    max_bytes: int | None = Field(None, gt=0)
    """At most the server's ``read_file_limit_bytes``; unset means that limit."""

    _path = field_validator("path")(no_nul)

    @field_validator("max_bytes")
    @classmethod
    def _within_cap(cls, value: int | None, info: ValidationInfo) -> int | None:
        return at_most(value, info, "read_file_limit_bytes")


class ExecuteShell(WireModel):
    """Run ``commandName`` with ``args`` as an argv list: no shell is involved."""

    type: Literal["execute_shell", "shell"]
    command_name: str = Field(
        min_length=1,
        validation_alias=AliasChoices("commandName", "command_name", "command"),
    )
    """The program; ``shell`` commands spell it ``command``."""
    args: list[str] = Field(default_factory=list, max_length=4096)
    working_directory: str = Field("/workspace", min_length=1, max_length=4096)
    env: dict[str, str] = Field(default_factory=dict)
    stdin: str | None = None
    timeout_seconds: float | None = Field(None, gt=0)
    """At most the server's ``max_command_timeout_seconds``; unset means its default."""

    _nul_free = field_validator("command_name", "working_directory")(no_nul)
    _stdin = field_validator("stdin")(lambda value: value if value is None else unicode_text(value))

    @field_validator("args")
    @classmethod
    def _args_nul_free(cls, value: list[str]) -> list[str]:
        for arg in value:
            no_nul(arg)
        return value

    @field_validator("env")
    @classmethod
    def _env_names(cls, value: dict[str, str]) -> dict[str, str]:
        return validate_env(value)

    @field_validator("timeout_seconds")
    @classmethod
    def _within_cap(cls, value: float | None, info: ValidationInfo) -> float | None:
        return at_most(value, info, "max_command_timeout_seconds")


class CreateDirectory(WireModel):
    """Create a directory and its parents; an existing directory is fine."""

    type: Literal["create_directory", "create_dir"]
    path: NonEmptyPath

    _path = field_validator("path")(no_nul)


class CopyFile(WireModel):
    """Copy one regular file; into a directory when ``destination`` is one."""

    type: Literal["copy_file"]
    source: NonEmptyPath = Field(
        validation_alias=AliasChoices("source", "sourcePath", "source_path")
    )
    destination: NonEmptyPath = Field(
        validation_alias=AliasChoices("destination", "destinationPath", "destination_path")
    )
    overwrite: bool = True

    _paths = field_validator("source", "destination")(no_nul)


class DeleteFile(WireModel):
    """Delete a file, a symlink (never its target) or a directory."""

    type: Literal["delete_file"]
    path: NonEmptyPath
    recursive: bool = False
    """Required to delete a non-empty directory."""

    _path = field_validator("path")(no_nul)


class ListDirectory(WireModel):
    type: Literal["list_directory", "list_files"]
    path: NonEmptyPath = "."
    recursive: bool = False
    include_hidden: bool = False

    _path = field_validator("path")(no_nul)


Command = Annotated[
    WriteFile | ReadFile | ExecuteShell | CreateDirectory | CopyFile | DeleteFile | ListDirectory,
    Field(discriminator="type"),
]


# ----------------------------------------------------------------------------- results


class WriteFileResult(WireModel):
    path: str
    """The absolute path written, inside the container."""
    path_base64: RawName = None
    bytes: int


class ReadFileResult(WireModel):
    path: str
    path_base64: RawName = None
    content: str
    """Text with invalid UTF-8 replaced (``utf8``), or base64 of the bytes (``base64``)."""
    bytes: int
    """Bytes returned (after the ``maxBytes`` cut)."""
    size: int
    """Size of the whole file."""
    encoding: Encoding
    truncated: bool


class ShellResult(WireModel):
    stdout: str
    stderr: str
    exit_code: int
    timed_out: bool
    truncated: bool
    cancelled: bool = Field(False, exclude_if=lambda value: not value)
    """``session.cancel`` stopped the command: its whole process tree was killed (exit code
    137) and the output so far is kept. Only on the wire when true."""


class CreateDirectoryResult(WireModel):
    path: str
    path_base64: RawName = None


class CopyFileResult(WireModel):
    source: str
    source_base64: RawName = None
    destination: str
    destination_base64: RawName = None
    bytes: int


class DeleteFileResult(WireModel):
    path: str
    path_base64: RawName = None
    deleted: Literal[True]


class DirectoryEntry(WireModel):
    name: str
    """The file name; one that is not valid UTF-8 has U+FFFD for each bad byte, and its
    raw bytes in ``name_base64``."""
    name_base64: RawName = None
    path: str
    path_base64: RawName = None
    type: Literal["file", "directory", "symlink"]
    size: int
    modified_at: str


class ListDirectoryResult(WireModel):
    path: str
    path_base64: RawName = None
    entries: list[DirectoryEntry]
    truncated: bool
    """More entries than the guest lists at once; the list was cut."""


CommandResult = (
    ShellResult
    | ReadFileResult
    | ListDirectoryResult
    | CopyFileResult
    | DeleteFileResult
    | WriteFileResult
    | CreateDirectoryResult
)


class CommandOutcome(WireModel):
    """The ``session.execute`` result: a command that ran and failed is an outcome too."""

    success: bool
    result: CommandResult | None
    error: str | None
    """``"<kind>: <detail>"`` when the command failed."""
    duration_ms: int
