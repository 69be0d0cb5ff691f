"""What the server answers: sessions, one-shot runs and health, one model per result."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from codebeaker_client.models.wire import Timestamp, WireModel

__all__ = [
    "CancelResult",
    "CloseResult",
    "CompileResult",
    "Health",
    "InputResult",
    "LanguageInfo",
    "LanguageList",
    "PoolReadiness",
    "RunResult",
    "SessionConfig",
    "SessionInfo",
    "SessionList",
    "SessionState",
    "SessionSummary",
]

SessionState = Literal["Active", "Idle"]


class SessionConfig(WireModel):
    """The limits a session was created with (the defaults filled in)."""

    idle_timeout_minutes: float
    max_lifetime_minutes: float
    memory_limit_mb: int = Field(alias="memoryLimitMB")
    cpu_limit: float
    env: dict[str, str] = Field(default_factory=dict, exclude=True)
    """Given to every command of the session; kept server-side, never echoed."""


class SessionInfo(WireModel):
    """The ``session.create`` result."""

    session_id: str
    container_id: str
    language: str
    """The canonical name."""
    created_at: Timestamp
    state: SessionState
    config: SessionConfig


class SessionSummary(WireModel):
    """One row of ``session.list``."""

    session_id: str
    container_id: str
    language: str
    created_at: Timestamp
    last_activity: Timestamp
    state: SessionState
    execution_count: int
    idle_minutes: float
    lifetime_minutes: float


class SessionList(WireModel):
    count: int
    sessions: list[SessionSummary]


class CloseResult(WireModel):
    session_id: str
    closed: Literal[True] = True


class InputResult(WireModel):
    session_id: str
    bytes: int
    """Bytes of input accepted (UTF-8)."""
    eof: bool


class CancelResult(WireModel):
    """``session.cancel``: what it stopped (an empty list when nothing matched)."""

    session_id: str
    cancelled: list[Any]
    """The ids of the calls stopped, oldest first, as those calls sent them: commands and
    cells killed or interrupted while they ran, and queued ones that will never run.
    ``null`` for a call sent without an ``id`` (REST, a JSON-RPC notification)."""


class CompileResult(WireModel):
    stdout: str
    stderr: str
    exit_code: int
    duration_ms: int


class RunResult(WireModel):
    """The ``execution.run`` result; ``compile`` only for compiled languages."""

    stdout: str
    stderr: str
    exit_code: int
    """The program's, or the compiler's when compilation failed (the program did not run)."""
    timed_out: bool
    truncated: bool
    duration_ms: int
    compile: CompileResult | None = Field(None, exclude_if=lambda value: value is None)


class PoolReadiness(WireModel):
    ready: int
    size: int


class Health(WireModel):
    status: Literal["ok", "degraded"]
    docker: Literal["ok", "unreachable"]
    sessions: int
    pool: dict[str, PoolReadiness]
    version: str


class LanguageInfo(WireModel):
    """One language of the registry, with what a playground needs to offer it."""

    name: str
    aliases: list[str]
    compiled: bool
    source_file: str
    sample: str
    """A short program that reads a line and answers it."""


class LanguageList(WireModel):
    """``GET /api/v1/languages``."""

    languages: list[LanguageInfo]
