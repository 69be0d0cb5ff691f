"""The file tools: ``read_file``, ``write_file``, ``edit_file`` and ``list_files``."""

from __future__ import annotations

from typing import Annotated, Any

from mcp.server.mcpserver import Context
from mcp_types import CallToolResult
from pydantic import Field

from codebeaker_client.mcp.edits import EditError, replace_exact
from codebeaker_client.mcp.errors import ToolError
from codebeaker_client.mcp.models import (
    EditOutput,
    ListFilesOutput,
    ReadFileOutput,
    WriteFileOutput,
)
from codebeaker_client.mcp.render import file_output, listing_output, tool_result
from codebeaker_client.mcp.toolbase import SessionId, ToolBase

__all__ = ["FileTools"]


class FileTools(ToolBase):
    """Reading, writing, editing and listing the files of a session."""

    async def read_file(
        self,
        ctx: Context[Any, Any],
        path: Annotated[str, Field(description="Relative to /workspace, or absolute.")],
        session_id: SessionId = None,
        offset: Annotated[int, Field(ge=1, description="First line to read (1-based).")] = 1,
        limit: Annotated[int | None, Field(ge=1, description="Most lines to read.")] = None,
    ) -> Annotated[CallToolResult, ReadFileOutput]:
        """Read a file from the session: text a page of lines at a time (next_offset reads
        on), PNG/JPEG/GIF/WebP images as images, other binary files described."""
        target = await self._target(ctx, session_id)
        with self._on(target):
            data = await target.session.files.read_bytes(path)
        output, images = file_output(path, data, offset, limit, self._budget)
        return tool_result(output, images)

    async def write_file(
        self,
        ctx: Context[Any, Any],
        path: Annotated[str, Field(description="Relative to /workspace, or absolute.")],
        content: Annotated[str, Field(description="The file's whole new text.")],
        session_id: SessionId = None,
    ) -> Annotated[CallToolResult, WriteFileOutput]:
        """Create or replace a text file in the session (parent directories are made)."""
        target = await self._target(ctx, session_id)
        with self._on(target):
            written = await target.session.files.write(path, content)
        return tool_result(WriteFileOutput(path=path, bytes=written))

    async def edit_file(
        self,
        ctx: Context[Any, Any],
        path: Annotated[str, Field(description="Relative to /workspace, or absolute.")],
        old_string: Annotated[str, Field(description="Exact text to replace, as in the file.")],
        new_string: Annotated[str, Field(description="Its replacement.")],
        replace_all: Annotated[
            bool, Field(description="Replace every occurrence (else it must occur once).")
        ] = False,
        session_id: SessionId = None,
    ) -> Annotated[CallToolResult, EditOutput]:
        """Replace exact text in a file. old_string must occur exactly once (quote enough
        context), unless replace_all; otherwise nothing is changed and the error says why."""
        target = await self._target(ctx, session_id)
        with self._on(target):
            data = await target.session.files.read_bytes(path)
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise ToolError(f"not_text: {path} is not UTF-8 text; edit it with shell.") from None
        try:
            replaced = replace_exact(text, old_string, new_string, replace_all=replace_all)
        except EditError as exc:
            raise ToolError(f"edit_failed: {path}: {exc}") from None
        with self._on(target):
            written = await target.session.files.write(path, replaced.text)
        return tool_result(EditOutput(path=path, replacements=replaced.count, bytes=written))

    async def list_files(
        self,
        ctx: Context[Any, Any],
        path: Annotated[str, Field(description="A directory (/workspace by default).")] = ".",
        recursive: Annotated[bool, Field(description="Include subdirectories.")] = False,
        session_id: SessionId = None,
    ) -> Annotated[CallToolResult, ListFilesOutput]:
        """List a directory of the session (hidden entries left out), sorted by path."""
        target = await self._target(ctx, session_id)
        with self._on(target):
            entries = await target.session.files.list(path, recursive=recursive)
        return tool_result(listing_output(path, entries, self._budget))
