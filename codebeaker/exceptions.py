"""Every error CodeBeaker raises, under one root.

    CodeBeakerError
    ├── InvalidParamsError (ValueError)          bad request fields, named in ``errors``
    ├── SessionNotFoundError (KeyError)          unknown, closed or expired session
    ├── SessionTerminatedError                   its container died behind our back
    ├── UnsupportedLanguageError (ValueError)    not in the runtime registry
    ├── ExecutionNotFoundError (KeyError)        unknown or pruned async execution
    ├── ExecutionFinishedError                   cancel of an execution that already ended
    ├── MalformedRequestError (ValueError)       a body or frame that is not JSON
    ├── LimitExceededError                       a server capacity limit
    │   ├── PayloadTooLargeError                 a body or frame over the size limit
    │   └── FrameRefusedError                    a JSON-RPC frame refused whole (-32600)
    │       ├── BatchTooLongError                a batch over the item limit
    │       └── IdTooLongError                   a request id over its length limit
    ├── UnauthorizedError (PermissionError)      missing or wrong API key
    ├── InputClosedError                         session.input with no command reading
    ├── ContextNotFoundError (KeyError)          a code context the session does not have
    ├── ContextsUnsupportedError                 code contexts in a sandbox without the agent
    ├── CommandFailedError                       a command ran and failed: a result
    └── SandboxError                             the Docker layer failed
        ├── SandboxUnavailableError (ConnectionError)   the engine cannot be reached
        ├── ContainerGoneError (LookupError)            the container no longer exists or runs
        ├── ContainerPausedError                        the container is paused (docker pause)
        ├── SandboxTimeoutError                         a Docker call passed its deadline
        └── ImageMissingError (LookupError)             a runtime image was never built

Library errors (``aiodocker.DockerError``, ``aiohttp`` errors) are translated into these at
the Docker boundary; kinds, JSON-RPC codes and HTTP statuses are chosen in ``codebeaker.errors``
and nowhere else.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = [
    "BatchTooLongError",
    "CodeBeakerError",
    "CommandFailedError",
    "ContainerGoneError",
    "ContainerPausedError",
    "ContextNotFoundError",
    "ContextsUnsupportedError",
    "ExecutionFinishedError",
    "ExecutionNotFoundError",
    "FrameRefusedError",
    "IdTooLongError",
    "ImageMissingError",
    "InputClosedError",
    "InvalidParamsError",
    "LimitExceededError",
    "MalformedRequestError",
    "PayloadTooLargeError",
    "ProgramExitedError",
    "RunNotFoundError",
    "SandboxError",
    "SandboxTimeoutError",
    "SandboxUnavailableError",
    "SessionNotFoundError",
    "SessionTerminatedError",
    "ShuttingDownError",
    "UnauthorizedError",
    "UnsupportedLanguageError",
]


class CodeBeakerError(Exception):
    """Root of every error CodeBeaker raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class InvalidParamsError(CodeBeakerError, ValueError):
    """Request fields failed validation; ``errors`` names each one (pydantic's shape)."""

    def __init__(self, errors: Sequence[dict[str, Any]], message: str = "Invalid params") -> None:
        super().__init__(message)
        self.errors = list(errors)

    @classmethod
    def single(
        cls, loc: Sequence[str | int], msg: str, type_: str = "value_error"
    ) -> InvalidParamsError:
        return cls([{"loc": list(loc), "msg": msg, "type": type_}], f"Invalid params: {msg}")


class SessionNotFoundError(CodeBeakerError, KeyError):
    def __init__(self, session_id: str) -> None:
        super().__init__(f"session not found: {session_id}")
        self.session_id = session_id

    def __str__(self) -> str:  # KeyError would quote the message otherwise
        return self.message


class SessionTerminatedError(CodeBeakerError):
    def __init__(self, session_id: str, reason: str) -> None:
        super().__init__(f"session {session_id} was terminated: {reason}")
        self.session_id = session_id


class UnsupportedLanguageError(CodeBeakerError, ValueError):
    def __init__(self, language: str, supported: Sequence[str]) -> None:
        super().__init__(f"unsupported language: {language!r}")
        self.language = language
        self.supported = list(supported)


class ExecutionNotFoundError(CodeBeakerError, KeyError):
    def __init__(self, execution_id: str) -> None:
        super().__init__(f"execution not found: {execution_id}")
        self.execution_id = execution_id

    def __str__(self) -> str:
        return self.message


class ExecutionFinishedError(CodeBeakerError):
    def __init__(self, execution_id: str, status: str) -> None:
        super().__init__(f"execution {execution_id} already ended: {status}")
        self.execution_id = execution_id
        self.status = status


class MalformedRequestError(CodeBeakerError, ValueError):
    """The body is not JSON at all (a parse error, before any field can be named)."""


class LimitExceededError(CodeBeakerError):
    def __init__(self, limit: str, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.limit = limit
        self.retry_after = retry_after
        """Seconds after which the same request may succeed; None when waiting will not help."""


class PayloadTooLargeError(LimitExceededError):
    def __init__(self, limit: str, maximum: int) -> None:
        super().__init__(limit, f"{limit.replace('_', ' ')} is over {maximum} bytes")


class FrameRefusedError(LimitExceededError):
    """A JSON-RPC frame refused whole, before anything in it runs: one invalid request
    (-32600) with a null id."""


class BatchTooLongError(FrameRefusedError):
    def __init__(self, items: int, maximum: int) -> None:
        super().__init__(
            "batch_items",
            f"a batch may hold at most {maximum} requests (CODEBEAKER_MAX_BATCH_ITEMS); "
            f"this one holds {items}",
        )


class IdTooLongError(FrameRefusedError):
    """No reply could safely carry the id: a 15 MiB id echoed in every error beat the
    reply budgets."""

    def __init__(self, max_chars: int, max_json: int) -> None:
        super().__init__(
            "id_length",
            f"a request id may be at most {max_chars} characters, {max_json} bytes as JSON "
            "(quotes and escapes included); nothing in this frame was run",
        )


class UnauthorizedError(CodeBeakerError, PermissionError):
    pass


class InputClosedError(CodeBeakerError):
    def __init__(self, session_id: str, request_id: Any = None) -> None:
        if request_id is None:
            message = (
                f"session {session_id} has no command reading input: none runs with "
                "stream: true, or its stdin was closed with eof"
            )
        else:
            message = (
                f"session {session_id} has no streamed command or cell with requestId "
                f"{repr(request_id)[:100]} reading input: unknown, not streamed, ended, or "
                "its stdin was closed with eof"
            )
        super().__init__(message)
        self.session_id = session_id
        self.request_id = request_id


class ProgramExitedError(CodeBeakerError):
    """Input for an interactive run whose program has ended, or whose stdin was closed."""

    def __init__(self) -> None:
        super().__init__("the program has exited or its input was closed")


class RunNotFoundError(CodeBeakerError, KeyError):
    """A ``POST /session`` id that is unknown, already used, or expired."""

    def __init__(self, run_id: str) -> None:
        super().__init__(f"no pending run {run_id!r}: unknown, already used, or expired")
        self.run_id = run_id

    def __str__(self) -> str:
        return self.message


class ShuttingDownError(CodeBeakerError):
    """The server is stopping: it takes no new runs."""

    def __init__(self) -> None:
        super().__init__("the server is shutting down; try again shortly")


class ContextNotFoundError(CodeBeakerError, KeyError):
    """A context id the session does not have (another session's included)."""

    def __init__(self, session_id: str, context_id: str) -> None:
        super().__init__(f"session {session_id} has no code context {context_id!r}")
        self.context_id = context_id

    def __str__(self) -> str:
        return self.message


class ContextsUnsupportedError(CodeBeakerError):
    """Code contexts need the in-container agent; this sandbox runs without it."""

    def __init__(self) -> None:
        super().__init__(
            "code contexts need the sandbox agent, and this session's sandbox runs commands "
            "through Docker exec (CODEBEAKER_DRIVER=exec, or an image without the agent); "
            "session.execute still works"
        )


class CommandFailedError(CodeBeakerError):
    """A command that ran but failed; shown to clients as ``"<kind>: <detail>"``."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail

    @classmethod
    def from_message(cls, message: str) -> CommandFailedError:
        """Back from the ``"<kind>: <detail>"`` form a command outcome carries."""
        kind, _, detail = message.partition(": ")
        return cls(kind, detail)


class SandboxError(CodeBeakerError):
    """The Docker layer failed in a way the client cannot fix."""


class SandboxUnavailableError(SandboxError, ConnectionError):
    pass


class ContainerGoneError(SandboxError, LookupError):
    def __init__(self, container_id: str, reason: str = "container is gone") -> None:
        super().__init__(f"{reason} ({container_id[:12]})")
        self.container_id = container_id
        self.reason = reason


class ContainerPausedError(SandboxError):
    """Someone paused the container (``docker pause``): nothing runs in it until it is
    unpaused, and its session stays open meanwhile."""

    def __init__(self, container_id: str) -> None:
        super().__init__(
            f"the session's container is paused ({container_id[:12]}); commands fail until "
            "it is unpaused"
        )
        self.container_id = container_id


class SandboxTimeoutError(SandboxError):
    """The engine did not answer a call in time: a paused container can leave an exec (and
    every later call about that container) hanging until it is thawed."""

    def __init__(self, container_id: str, seconds: float) -> None:
        about = f" about container {container_id[:12]}" if container_id else ""
        super().__init__(
            f"the Docker engine did not answer{about} within {seconds:g}s (the container "
            "may be paused, or the engine overloaded)"
        )
        self.container_id = container_id
        self.seconds = seconds


class ImageMissingError(SandboxError, LookupError):
    def __init__(self, image: str) -> None:
        super().__init__(f"runtime image {image} is missing; run `codebeaker images build`")
        self.image = image
