"""The one table from exceptions to what a client sees: kind, JSON-RPC code, HTTP status.

Every door renders errors through ``describe``: JSON-RPC as its ``error`` member, REST as
a problem document. Unexpected exceptions are logged here with an id the reply repeats,
and no reply ever carries a stack trace.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from codebeaker_client.models.errors import ErrorData, FieldError, Problem
from codebeaker_client.models.jsonrpc import RpcError
from loguru import logger

from codebeaker.exceptions import (
    CodeBeakerError,
    CommandFailedError,
    ContainerPausedError,
    ContextNotFoundError,
    ContextsUnsupportedError,
    ExecutionFinishedError,
    ExecutionNotFoundError,
    FrameRefusedError,
    ImageMissingError,
    InputClosedError,
    InvalidParamsError,
    LimitExceededError,
    MalformedRequestError,
    PayloadTooLargeError,
    ProgramExitedError,
    RunNotFoundError,
    SandboxTimeoutError,
    SandboxUnavailableError,
    SessionNotFoundError,
    SessionTerminatedError,
    ShuttingDownError,
    UnauthorizedError,
    UnsupportedLanguageError,
)
from codebeaker.metrics import REJECTED

__all__ = [
    "INTERNAL_ERROR",
    "INVALID_PARAMS",
    "INVALID_REQUEST",
    "PARSE_ERROR",
    "Described",
    "describe",
    "error_text",
    "problem_for",
    "rpc_error",
]

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603

# Order matters: the first class an exception is an instance of wins.
KINDS: tuple[tuple[type[CodeBeakerError], int, int, str], ...] = (
    (MalformedRequestError, PARSE_ERROR, 400, "parse_error"),
    (SessionNotFoundError, -32001, 404, "session_not_found"),
    (SessionTerminatedError, -32002, 410, "session_terminated"),
    (UnsupportedLanguageError, -32003, 422, "unsupported_language"),
    (FrameRefusedError, INVALID_REQUEST, 413, "limit_exceeded"),
    (PayloadTooLargeError, -32004, 413, "limit_exceeded"),
    (LimitExceededError, -32004, 429, "limit_exceeded"),
    (SandboxUnavailableError, -32005, 503, "sandbox_unavailable"),
    (ImageMissingError, -32005, 503, "sandbox_unavailable"),
    (UnauthorizedError, -32006, 401, "unauthorized"),
    # ours, beyond the spec's table
    (InputClosedError, -32007, 409, "input_closed"),
    (ExecutionNotFoundError, -32008, 404, "execution_not_found"),
    (ExecutionFinishedError, -32009, 409, "execution_finished"),
    (ProgramExitedError, -32007, 409, "input_closed"),
    (RunNotFoundError, -32010, 404, "run_not_found"),
    (ShuttingDownError, -32011, 503, "shutting_down"),
    (ContextNotFoundError, -32012, 404, "context_not_found"),
    (ContextsUnsupportedError, -32013, 409, "contexts_unsupported"),
    (ContainerPausedError, -32014, 409, "sandbox_paused"),
    (SandboxTimeoutError, -32015, 504, "sandbox_timeout"),
)

PATH_KIND = "path_outside_workspace"
COMMAND_STATUSES = {
    "file_not_found": 404,
    "path_outside_workspace": 422,
    "file_too_large": 413,
    "permission_denied": 403,
    "agent_lost": 503,
}
"""REST statuses of command failures (the files routes); any other kind is 409."""

TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    410: "Gone",
    413: "Content Too Large",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


@dataclass(frozen=True)
class Described:
    """An error as every door needs it."""

    code: int
    status: int
    message: str
    data: ErrorData


def describe(exc: BaseException) -> Described:
    """Map any exception to what a client sees; unexpected ones are logged with an id."""
    # A bare pydantic ValidationError is ours (a model the server built): internal. What
    # clients send is parsed with ``api.wire.parse``, which raises InvalidParamsError.
    if isinstance(exc, InvalidParamsError):
        errors = [FieldError.model_validate(error) for error in exc.errors]
        data = ErrorData(kind="invalid_params", errors=errors)
        return Described(INVALID_PARAMS, 422, _summary(errors, exc.message), data)
    if isinstance(exc, CommandFailedError):
        status = COMMAND_STATUSES.get(exc.kind, 409)
        named = [FieldError(loc=["path"], msg=exc.message, type=exc.kind)]
        data = ErrorData(kind=exc.kind, errors=named if exc.kind == PATH_KIND else None)
        return Described(INVALID_PARAMS, status, exc.message, data)
    if isinstance(exc, SandboxUnavailableError):  # the engine's address is ours to know
        logger.warning("sandbox unavailable: {}", exc)
        exc = SandboxUnavailableError("the sandbox engine cannot be reached; try again later")
    for cls, code, status, kind in KINDS:
        if isinstance(exc, cls):
            data = ErrorData(kind=kind)
            if isinstance(exc, UnsupportedLanguageError):
                data = ErrorData(kind=kind, supported=exc.supported)
            if isinstance(exc, LimitExceededError):
                data = ErrorData(kind=kind, limit=exc.limit, retry_after=exc.retry_after)
                REJECTED.labels(limit=exc.limit).inc()
            return Described(code, status, exc.message, data)
    error_id = uuid.uuid4().hex[:16]
    logger.opt(exception=exc).error("internal error {}: {!r}", error_id, exc)
    data = ErrorData(kind="internal_error", error_id=error_id)
    return Described(INTERNAL_ERROR, 500, "Internal error", data)


def error_text(exc: BaseException) -> str:
    """One line for doors whose errors are plain text (the interactive-run messages):
    ``"<kind>: <message>"``, each bad field named with what is wrong with it."""
    described = describe(exc)
    kind, message = described.data.kind, described.message
    if described.data.errors:
        message = "; ".join(
            f"{_short('.'.join(str(part) for part in error.loc)) or 'message'}: "
            f"{_short(error.msg.removeprefix('Value error, '))}"
            for error in described.data.errors
        )
    elif described.data.supported:
        message = f"{message}; supported: {', '.join(described.data.supported)}"
    return f"{kind}: {message}"


def _short(text: str, limit: int = 200) -> str:
    """pydantic repeats what the client sent (an unknown tag, a field name): never echo
    megabytes of it back."""
    return text if len(text) <= limit else text[:limit] + "…"


def rpc_error(exc: BaseException) -> RpcError:
    described = describe(exc)
    return RpcError(code=described.code, message=described.message, data=described.data)


def problem_for(status: int, detail: str, data: ErrorData) -> Problem:
    return Problem(
        title=TITLES.get(status, "Error"),
        status=status,
        detail=detail,
        **data.model_dump(exclude_none=True),
    )


def _summary(errors: list[FieldError], message: str) -> str:
    fields = [".".join(str(part) for part in error.loc) for error in errors[:3]]
    return f"Invalid params: {', '.join(filter(None, fields))}" if any(fields) else message
