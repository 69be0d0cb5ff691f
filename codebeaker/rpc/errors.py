"""The one place exceptions become JSON-RPC errors (code, message, data)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from loguru import logger
from pydantic import ValidationError

from codebeaker.exceptions import (
    CodeBeakerError,
    ImageMissingError,
    InputClosedError,
    InvalidParamsError,
    LimitExceededError,
    SandboxUnavailableError,
    SessionNotFoundError,
    SessionTerminatedError,
    UnauthorizedError,
    UnsupportedLanguageError,
)

__all__ = [
    "INTERNAL_ERROR",
    "INVALID_PARAMS",
    "RpcError",
    "error_for",
    "validation_errors",
]

INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603

# Order matters: the first class an exception is an instance of wins.
SERVER_ERRORS: tuple[tuple[type[CodeBeakerError], int, str], ...] = (
    (SessionNotFoundError, -32001, "session_not_found"),
    (SessionTerminatedError, -32002, "session_terminated"),
    (UnsupportedLanguageError, -32003, "unsupported_language"),
    (LimitExceededError, -32004, "limit_exceeded"),
    (SandboxUnavailableError, -32005, "sandbox_unavailable"),
    (ImageMissingError, -32005, "sandbox_unavailable"),
    (UnauthorizedError, -32006, "unauthorized"),
    (InputClosedError, -32007, "input_closed"),  # ours, beyond the spec's table
)


@dataclass(frozen=True)
class RpcError:
    code: int
    message: str
    data: dict[str, Any]

    def to_wire(self, request_id: Any = None) -> dict[str, Any]:
        error = {"code": self.code, "message": self.message, "data": self.data}
        return {"jsonrpc": "2.0", "error": error, "id": request_id}


def validation_errors(exc: ValidationError) -> list[dict[str, Any]]:
    """pydantic's errors, trimmed to what the spec promises: loc, msg, type."""
    return [
        {"loc": list(error["loc"]), "msg": error["msg"], "type": error["type"]}
        for error in exc.errors(include_url=False, include_context=False, include_input=False)
    ]


def error_for(exc: BaseException) -> RpcError:
    """Map any exception to the error a client sees; unexpected ones are logged with an id."""
    if isinstance(exc, ValidationError):
        exc = InvalidParamsError(validation_errors(exc))
    if isinstance(exc, InvalidParamsError):
        data: dict[str, Any] = {"kind": "invalid_params", "errors": exc.errors}
        return RpcError(INVALID_PARAMS, _summary(exc), data)
    for cls, code, kind in SERVER_ERRORS:
        if isinstance(exc, cls):
            data = {"kind": kind}
            if isinstance(exc, UnsupportedLanguageError):
                data["supported"] = exc.supported
            if isinstance(exc, LimitExceededError):
                data["limit"] = exc.limit
            return RpcError(code, exc.message, data)
    error_id = uuid.uuid4().hex[:16]
    logger.opt(exception=exc).error("internal error {}: {!r}", error_id, exc)
    return RpcError(
        INTERNAL_ERROR, "Internal error", {"kind": "internal_error", "errorId": error_id}
    )


def _summary(exc: InvalidParamsError) -> str:
    fields = [".".join(str(part) for part in error["loc"]) for error in exc.errors[:3]]
    return f"Invalid params: {', '.join(filter(None, fields))}" if any(fields) else exc.message
