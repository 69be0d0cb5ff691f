"""Code contexts: long-lived interpreters in a session, and the cells run in them.

``context.create``, ``context.list``, ``context.restart``, ``context.close``,
``session.run_code`` and ``session.interrupt``; ``session.display`` notifications.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, ValidationInfo, field_validator

from codebeaker_client.models.requests import MAX_SOURCE_BYTES, SessionId
from codebeaker_client.models.wire import Timestamp, WireModel, at_most, no_nul, validate_env

__all__ = [
    "CellStatus",
    "CodeError",
    "ContextClosed",
    "ContextInfo",
    "ContextList",
    "ContextRef",
    "CreateContextRequest",
    "DisplayData",
    "DisplayNotification",
    "InterruptResult",
    "RunCodeRequest",
    "RunCodeResult",
]

ContextId = Annotated[str, Field(min_length=1, max_length=64)]
CellStatus = Literal["ok", "error", "interrupted", "timeout"]


class CreateContextRequest(WireModel):
    session_id: SessionId
    language: Literal["python"] = "python"
    cwd: str | None = Field(None, min_length=1, max_length=4096)
    """Working directory of the interpreter: under /workspace (relative paths are) or
    /tmp; it must exist. Unset: /workspace."""
    env: dict[str, str] = Field(default_factory=dict, max_length=256)
    """On top of the session's ``env``."""

    _cwd = field_validator("cwd")(lambda value: value if value is None else no_nul(value))

    @field_validator("env")
    @classmethod
    def _env(cls, value: dict[str, str]) -> dict[str, str]:
        return validate_env(value)


class ContextRef(WireModel):
    session_id: SessionId
    context_id: ContextId


class RunCodeRequest(WireModel):
    session_id: SessionId
    code: str = Field(max_length=MAX_SOURCE_BYTES)
    context_id: ContextId | None = None
    """Unset: the session's default context (started on first use if it has none)."""
    timeout_seconds: float | None = Field(None, gt=0)
    """At most the server's ``max_command_timeout_seconds``; unset means its default."""
    stream: bool = False
    """Send output (``session.output``) and each displayed value (``session.display``) as
    they come, and let ``input()`` read ``session.input``."""

    @field_validator("timeout_seconds")
    @classmethod
    def _timeout(cls, value: float | None, info: ValidationInfo) -> float | None:
        return at_most(value, info, "max_command_timeout_seconds")


class ContextInfo(WireModel):
    session_id: str
    context_id: str
    language: Literal["python"]
    cwd: str
    created_at: Timestamp
    execution_count: int
    """Cells run since the interpreter (re)started."""
    busy: bool
    """A cell is running or queued."""
    pid: int
    """The interpreter's process id inside the sandbox (0 while it starts)."""


class ContextList(WireModel):
    session_id: str
    count: int
    contexts: list[ContextInfo]


class ContextClosed(WireModel):
    session_id: str
    context_id: str
    closed: Literal[True] = True


class InterruptResult(WireModel):
    session_id: str
    context_id: str
    interrupted: bool
    """Whether a cell was running; it ends with status ``interrupted``."""


class DisplayData(WireModel):
    """A value a cell showed, as a MIME bundle: ``text/plain`` always; ``text/html``,
    ``image/png`` (base64), ``image/svg+xml``, ``application/json`` … when it offers them."""

    kind: Literal["result", "display"]
    """``result``: the cell's last expression; ``display``: ``display()`` or a figure."""
    data: dict[str, Any]
    truncated: bool = Field(False, exclude_if=lambda value: not value)
    """A representation was cut or left out for its size."""


class CodeError(WireModel):
    name: str
    """The exception's class (``ZeroDivisionError``), or ``ContextDied``, ``ContextKilled``,
    ``ContextRestarted``, ``ContextLost`` when the interpreter itself ended."""
    value: str
    traceback: str
    """From the cell's own frames on, its lines shown."""


class RunCodeResult(WireModel):
    session_id: str
    context_id: str
    status: CellStatus
    execution_count: int
    stdout: str
    stderr: str
    results: list[DisplayData]
    error: CodeError | None
    state_preserved: bool
    """False when the interpreter was started again during (or just before) this cell:
    variables from earlier cells are gone."""
    duration_ms: int
    truncated: bool
    """Output or a displayed value was cut at its limit."""


class DisplayNotification(WireModel):
    """``session.display``: a value a streamed cell showed, in order with its output."""

    session_id: str
    request_id: Any
    """The id of the ``session.run_code`` request."""
    result: DisplayData
