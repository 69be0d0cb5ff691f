"""The one place where an SDK error becomes a tool error the model can act on.

Only infrastructure failures are tool errors (``isError``): a program that exits non-zero or
a cell that raises is a normal result. Each message names what happened and what to call
next, because the model reading it cannot see the server or its logs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from mcp.server.mcpserver.exceptions import ToolError

from codebeaker_client import errors

__all__ = ["ToolError", "explain", "translated"]

FILE_HINTS = {
    "file_not_found": "list_files shows what exists",
    "path_outside_workspace": "paths must be under /workspace (where relative ones start) or /tmp",
    "not_a_directory": "a file stands where a directory is needed",
    "not_a_regular_file": "only regular files can be read or copied",
    "file_too_large": "files are read and written 10 MiB at most at once; use shell for more",
    "no_space": "the session's disk (/workspace, /tmp) is full; remove files with shell",
    "permission_denied": "the sandbox user may not do that here",
}


def explain(exc: errors.CodeBeakerError, *, session_id: str | None, owned: bool) -> str:
    """A message for the model: ``<kind>: <what happened>. <what to do next>``. ``owned``:
    the session was the client's own (the caller named none)."""
    if isinstance(exc, errors.SessionNotFound | errors.SessionTerminated):
        if owned:
            return (
                f"{exc.kind}: this client's session {session_id} has ended (idle timeout, "
                "lifetime or a dead container); its files and variables are gone. Call the "
                "tool again to start a fresh session."
            )
        return (
            f"{exc.kind}: session {session_id} is gone (closed, expired or its container "
            "died). Call session_create for a new one, or omit session_id to use this "
            "client's own session."
        )
    if isinstance(exc, errors.LimitExceeded):
        wait = f" Retry in {exc.retry_after:g} s." if exc.retry_after is not None else ""
        extra = (
            " Close sessions you no longer need (session_list, session_close)."
            if exc.limit in ("sessions", "contexts")
            else ""
        )
        return f"limit_exceeded ({exc.limit}): {exc.message}.{wait}{extra}"
    if isinstance(exc, errors.ContextsUnsupported):
        return (
            "contexts_unsupported: this CodeBeaker server runs commands without its in-sandbox "
            "agent (CODEBEAKER_DRIVER=exec), so execute_code cannot keep state. Use shell "
            "(python3 -c ..., or a script written with write_file) instead."
        )
    if isinstance(exc, errors.ContextNotFound):
        return f"context_not_found: {exc.message}. Omit context to use the default one."
    if isinstance(exc, errors.InvalidParams):
        fields = "; ".join(
            f"{'.'.join(str(part) for part in error.loc)}: {error.msg}" for error in exc.errors
        )
        return f"invalid_params: {fields or exc.message}"
    if isinstance(exc, errors.UnsupportedLanguage):
        return f"unsupported_language: {exc.message}. Supported: {', '.join(exc.supported)}."
    if isinstance(exc, errors.Unauthorized):
        return (
            "unauthorized: the CodeBeaker server refused this MCP server's API key. Restart "
            "codebeaker mcp with --api-key (or CODEBEAKER_API_KEY) set to the server's key."
        )
    if isinstance(exc, errors.ConnectionLost):
        return (
            f"connection_lost: {exc.message}. The next call reconnects; a command already "
            "sent may have run, so check its effects before running it again."
        )
    if isinstance(exc, errors.FileError):
        hint = FILE_HINTS.get(exc.command_kind)
        return f"{exc.message}" + (f". Hint: {hint}." if hint else "")
    if isinstance(exc, errors.InputClosed):
        return (
            "input_closed: the job no longer reads stdin (it ended, or its stdin was closed; "
            "start it with shell(interactive=true) to feed it with process_input)."
        )
    retry = " It may work if tried again." if exc.retryable else ""
    return f"{exc.kind}: {exc.message}.{retry}"


@contextmanager
def translated(session_id: str | None = None, *, owned: bool = False) -> Iterator[None]:
    """Raise every SDK error inside as a ``ToolError`` with ``explain``'s message."""
    try:
        yield
    except errors.CodeBeakerError as exc:
        raise ToolError(explain(exc, session_id=session_id, owned=owned)) from exc
