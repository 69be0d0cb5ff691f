"""A session's files: ``/workspace`` (relative paths) and ``/tmp``, read and written through the
typed file commands, with whole directories carried up and down."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import posixpath
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

from codebeaker_client.errors import CodeBeakerError, FileError, for_command
from codebeaker_client.models.commands import (
    CopyFile,
    CreateDirectory,
    DeleteFile,
    DirectoryEntry,
    ListDirectory,
    ListDirectoryResult,
    ReadFile,
    ReadFileResult,
    WriteFile,
)
from codebeaker_client.params import build

if TYPE_CHECKING:
    from codebeaker_client.session import AsyncSession

__all__ = ["AsyncFiles", "DirectoryEntry"]

CHUNK_BYTES: Final = 512 * 1024
"""A write bigger than this goes in appended pieces: as base64 each is a frame of about
700 KB, under the server's message limit (``CODEBEAKER_MAX_MESSAGE_BYTES``) even when it
is set well below its 16 MiB default."""


class AsyncFiles:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def _run(self, command: Any) -> Any:
        outcome = await self._session._execute(command)
        if not outcome.success or outcome.result is None:
            raise for_command(outcome.error or "io_error: no result")
        return outcome.result

    async def _read(
        self, path: str, encoding: Literal["utf8", "base64"], max_bytes: int | None
    ) -> ReadFileResult:
        command = build(
            ReadFile, type="read_file", path=path, encoding=encoding, max_bytes=max_bytes
        )
        result: ReadFileResult = await self._run(command)
        if result.truncated and max_bytes is None:
            raise FileError(
                f"{result.path} is {result.size} bytes, more than the server reads at once"
                f" ({result.bytes}); pass max_bytes for its start",
                "file_too_large",
            )
        return result

    async def read_text(self, path: str, *, max_bytes: int | None = None) -> str:
        """The file as UTF-8 text (invalid bytes become U+FFFD)."""
        result = await self._read(path, "utf8", max_bytes)
        return result.content

    async def read_bytes(self, path: str, *, max_bytes: int | None = None) -> bytes:
        result = await self._read(path, "base64", max_bytes)
        return base64.b64decode(result.content)

    async def write(self, path: str, data: str | bytes) -> int:
        """Create or replace the file (parent directories made); the bytes written. A file
        bigger than one piece is assembled beside it and copied over it at the end, so a
        write that fails half way never leaves the file cut short."""
        raw = data.encode() if isinstance(data, str) else data
        if len(raw) <= CHUNK_BYTES:
            await self._write(path, raw, "Create")
            return len(raw)
        part = f"{path}.part-{secrets.token_hex(4)}"
        try:
            for start in range(0, len(raw), CHUNK_BYTES):
                await self._write(
                    part, raw[start : start + CHUNK_BYTES], "Append" if start else "Create"
                )
            await self.copy(part, path)
        finally:
            with contextlib.suppress(CodeBeakerError):
                await self.remove(part)
        return len(raw)

    async def _write(self, path: str, raw: bytes, mode: Literal["Create", "Append"]) -> None:
        content = base64.b64encode(raw).decode()
        command = build(
            WriteFile, type="write_file", path=path, content=content, encoding="base64", mode=mode
        )
        await self._run(command)

    async def _listing(
        self, path: str, recursive: bool, include_hidden: bool
    ) -> ListDirectoryResult:
        command = build(
            ListDirectory,
            type="list_directory",
            path=path,
            recursive=recursive,
            include_hidden=include_hidden,
        )
        result: ListDirectoryResult = await self._run(command)
        if result.truncated:
            raise FileError(f"{result.path} holds more entries than one listing", "too_many")
        return result

    async def list(
        self, path: str = ".", *, recursive: bool = False, include_hidden: bool = False
    ) -> list[DirectoryEntry]:
        """The directory's entries, sorted by path (hidden ones only if asked)."""
        return (await self._listing(path, recursive, include_hidden)).entries

    async def mkdir(self, path: str) -> None:
        """Make the directory and its parents (an existing one is fine)."""
        await self._run(build(CreateDirectory, type="create_directory", path=path))

    async def copy(self, source: str, destination: str, *, overwrite: bool = True) -> None:
        command = build(
            CopyFile, type="copy_file", source=source, destination=destination, overwrite=overwrite
        )
        await self._run(command)

    async def remove(self, path: str, *, recursive: bool = False) -> None:
        await self._run(build(DeleteFile, type="delete_file", path=path, recursive=recursive))

    async def exists(self, path: str) -> bool:
        try:
            await self._read(path, "base64", 1)
        except FileError as exc:
            if exc.command_kind == "file_not_found":
                return False
            if exc.command_kind in ("not_a_regular_file", "permission_denied"):
                return True
            raise
        return True

    async def upload(self, local: str | Path, remote: str) -> int:
        """Copy a local file, or a directory with everything in it (symlinks left out), to
        ``remote``; the number of files written."""
        source = Path(local)
        if not await asyncio.to_thread(source.is_dir):
            await self.write(remote, await asyncio.to_thread(source.read_bytes))
            return 1
        await self.mkdir(remote)
        count = 0
        for item, is_dir in await asyncio.to_thread(_tree, source):
            target = posixpath.join(remote, item.relative_to(source).as_posix())
            if is_dir:
                await self.mkdir(target)
            else:
                await self.write(target, await asyncio.to_thread(item.read_bytes))
                count += 1
        return count

    async def download(self, remote: str, local: str | Path) -> int:
        """Copy a file, or a directory with everything in it (hidden files too), from
        ``remote`` to ``local``; the number of files written. Symlinks are left out."""
        target = Path(local)
        try:
            listing = await self._listing(remote, recursive=True, include_hidden=True)
        except FileError as exc:
            if exc.command_kind != "not_a_directory":
                raise
            await asyncio.to_thread(_save, target, await self.read_bytes(remote))
            return 1
        await asyncio.to_thread(target.mkdir, parents=True, exist_ok=True)
        count = 0
        for entry in listing.entries:
            relative = posixpath.relpath(entry.path, listing.path)
            if relative == ".." or relative.startswith("../") or posixpath.isabs(relative):
                raise FileError(f"{entry.path} is not under {listing.path}", "bad_listing")
            path = target / relative
            if entry.type == "directory":
                await asyncio.to_thread(path.mkdir, parents=True, exist_ok=True)
            elif entry.type == "file":
                await asyncio.to_thread(_save, path, await self.read_bytes(entry.path))
                count += 1
        return count


def _tree(root: Path) -> list[tuple[Path, bool]]:
    """Every directory and regular file under ``root``, parents first. Symlinks are left
    out (as ``download`` does): one could point at a secret outside the tree."""
    items = sorted(item for item in root.rglob("*") if not item.is_symlink())
    return [(item, item.is_dir()) for item in items if item.is_dir() or item.is_file()]


def _save(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
