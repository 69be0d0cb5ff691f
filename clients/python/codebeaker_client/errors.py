"""Every error the SDK raises, under one root, one class per error kind the server names.

    CodeBeakerError                    .kind, .retryable
    ├── ConnectionLost                 the socket dropped; .partial holds what had arrived
    │   └── Unreachable                the server cannot be connected to at all
    ├── Unauthorized                   missing or wrong API key
    ├── InvalidParams                  .errors names every bad field
    ├── SessionNotFound                unknown, closed or expired session
    ├── SessionTerminated              its container died behind the server's back
    ├── UnsupportedLanguage            .supported
    ├── LimitExceeded                  .limit, .retry_after
    ├── SandboxUnavailable             the server cannot reach its engine or image
    │   ├── SandboxPaused              the session's container is paused; the session stays
    │   └── SandboxTimeout             the engine did not answer about it in time
    ├── ShuttingDown                   the server is stopping
    ├── InputClosed                    stdin of a command that no longer reads
    ├── ContextNotFound / ContextsUnsupported
    ├── ServerError                    anything else the server answered, .error_id
    └── CommandError                   a command ran and failed: .result when it has one
        ├── CommandFailed              non-zero exit, only with check=True
        ├── CommandTimeout             past its timeout; the tree was killed
        ├── AgentLost                  the sandbox's agent died during the command
        └── FileError                  file_not_found, path_outside_workspace, …

``retryable`` says whether the same call may succeed if made again (after ``retry_after``
when there is one); the kind-to-class table is ``for_rpc_error`` and ``for_command``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import ValidationError

from codebeaker_client.models.errors import ErrorData, FieldError
from codebeaker_client.models.jsonrpc import RpcError

if TYPE_CHECKING:
    from codebeaker_client.results import ExecResult

__all__ = [
    "AgentLost",
    "CodeBeakerError",
    "CommandError",
    "CommandFailed",
    "CommandTimeout",
    "ConnectionLost",
    "ContextNotFound",
    "ContextsUnsupported",
    "FileError",
    "InputClosed",
    "InvalidParams",
    "LimitExceeded",
    "Partial",
    "SandboxPaused",
    "SandboxTimeout",
    "SandboxUnavailable",
    "ServerError",
    "SessionNotFound",
    "SessionTerminated",
    "ShuttingDown",
    "Unauthorized",
    "Unreachable",
    "UnsupportedLanguage",
    "for_command",
    "for_rpc_error",
]


class CodeBeakerError(Exception):
    """Root of everything the SDK raises on purpose."""

    kind: ClassVar[str] = "error"
    retryable: bool = False

    def __init__(self, message: str, *, code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        """The JSON-RPC error code, when the server answered with one."""

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class Partial:
    """What a streamed command had printed when its connection dropped."""

    stdout: str
    stderr: str


class ConnectionLost(CodeBeakerError, ConnectionError):
    """The connection dropped before the reply. The client reconnects on the next call. A
    request that was already sent may have run (its session keeps running), so only one
    that was not is ``retryable``."""

    kind = "connection_lost"

    def __init__(self, message: str, *, sent: bool = True, partial: Partial | None = None):
        super().__init__(message)
        self.sent = sent
        """Whether the request had reached the socket before it dropped."""
        self.partial = partial
        self.retryable = not sent

    def with_partial(self, partial: Partial) -> ConnectionLost:
        return ConnectionLost(self.message, sent=self.sent, partial=partial)


class Unreachable(ConnectionLost):
    """No connection could be opened (refused, timed out, not a WebSocket server)."""

    kind = "unreachable"

    def __init__(self, message: str) -> None:
        super().__init__(message, sent=False)


class Unauthorized(CodeBeakerError, PermissionError):
    kind = "unauthorized"


class InvalidParams(CodeBeakerError, ValueError):
    kind = "invalid_params"

    def __init__(self, message: str, errors: Sequence[FieldError], *, code: int | None = None):
        super().__init__(message, code=code)
        self.errors = list(errors)
        """Every bad field: ``loc`` (wire names), ``msg``, ``type``."""


class SessionNotFound(CodeBeakerError, LookupError):
    kind = "session_not_found"


class SessionTerminated(CodeBeakerError):
    kind = "session_terminated"


class UnsupportedLanguage(CodeBeakerError):
    kind = "unsupported_language"

    def __init__(self, message: str, supported: Sequence[str], *, code: int | None = None):
        super().__init__(message, code=code)
        self.supported = list(supported)


class LimitExceeded(CodeBeakerError):
    kind = "limit_exceeded"

    def __init__(
        self, message: str, limit: str | None, retry_after: float | None, *, code: int | None
    ) -> None:
        super().__init__(message, code=code)
        self.limit = limit
        """Which limit: ``sessions``, ``runs``, ``message_size``, ``stdin``, ``contexts`` …"""
        self.retry_after = retry_after
        self.retryable = retry_after is not None


class SandboxUnavailable(CodeBeakerError):
    kind = "sandbox_unavailable"
    retryable = True


class SandboxPaused(SandboxUnavailable):
    """Someone paused the session's container (``docker pause``); it answers again once
    unpaused, and the session stays open meanwhile."""

    kind = "sandbox_paused"


class SandboxTimeout(SandboxUnavailable):
    """The engine did not answer a call about the session's container in time (most
    often a container paused while a process started in it); the session stays open."""

    kind = "sandbox_timeout"


class ShuttingDown(CodeBeakerError):
    kind = "shutting_down"
    retryable = True


class InputClosed(CodeBeakerError):
    kind = "input_closed"


class ContextNotFound(CodeBeakerError):
    kind = "context_not_found"


class ContextsUnsupported(CodeBeakerError):
    kind = "contexts_unsupported"


class ServerError(CodeBeakerError):
    """An error the SDK has no class for (``internal_error`` among them)."""

    def __init__(self, message: str, data: ErrorData, *, code: int | None = None) -> None:
        super().__init__(message, code=code)
        self.data = data
        self.error_id = data.error_id
        """With internal errors: the id the server's log repeats."""

    @property
    def server_kind(self) -> str:
        return self.data.kind


class CommandError(CodeBeakerError):
    """A command reached its session and failed there; the session is fine."""

    def __init__(self, message: str, command_kind: str, result: ExecResult | None = None):
        super().__init__(f"{command_kind}: {message}")
        self.command_kind = command_kind
        self.result = result
        """The command's result, for shell commands: its output, exit code …"""


class CommandFailed(CommandError):
    """``check=True`` and the program exited non-zero."""

    kind = "nonzero_exit"


class CommandTimeout(CommandError, TimeoutError):
    kind = "timeout"


class AgentLost(CommandError):
    """The command was killed with its agent; running it again may repeat its effects."""

    kind = "agent_lost"


class FileError(CommandError):
    """A file command failed: ``command_kind`` is ``file_not_found``, ``file_exists``,
    ``path_outside_workspace``, ``not_a_directory``, ``file_too_large``, ``no_space`` …"""

    kind = "file_error"


_BY_KIND: dict[str, type[CodeBeakerError]] = {
    cls.kind: cls
    for cls in (
        Unauthorized,
        SessionNotFound,
        SessionTerminated,
        SandboxUnavailable,
        SandboxPaused,
        SandboxTimeout,
        ShuttingDown,
        InputClosed,
        ContextNotFound,
        ContextsUnsupported,
    )
}


def for_rpc_error(error: Any) -> CodeBeakerError:
    """The exception for a JSON-RPC ``error`` member, however much of it a server filled in
    (fields it added are ignored, a missing ``data`` is kind ``error``)."""
    try:
        parsed = RpcError.model_validate(
            {"data": {"kind": "error"}, **error} if isinstance(error, dict) else error,
            extra="ignore",
        )
    except ValidationError:
        return ServerError(f"a malformed error answer: {str(error)[:200]}", ErrorData(kind="error"))
    data, message, code = parsed.data, parsed.message, parsed.code
    if data.kind == "invalid_params":
        return InvalidParams(message, data.errors or [], code=code)
    if data.kind == "unsupported_language":
        return UnsupportedLanguage(message, data.supported or [], code=code)
    if data.kind == "limit_exceeded":
        return LimitExceeded(message, data.limit, data.retry_after, code=code)
    cls = _BY_KIND.get(data.kind)
    if cls is None:
        return ServerError(message, data, code=code)
    return cls(message, code=code)


_COMMAND_KINDS: dict[str, type[CommandError]] = {
    "nonzero_exit": CommandFailed,
    "timeout": CommandTimeout,
    "agent_lost": AgentLost,
}


def for_command(error: str, result: ExecResult | None = None) -> CommandError:
    """The exception for a failed command's ``"<kind>: <detail>"``."""
    command_kind, _, detail = error.partition(": ")
    cls = _COMMAND_KINDS.get(command_kind, FileError if result is None else CommandError)
    return cls(detail or command_kind, command_kind, result)
