"""What clients send: the params of each JSON-RPC method, which are also the REST bodies.

camelCase on the wire, snake_case accepted. Server maxima are checked by the models (see
``codebeaker_client.models.wire``): a value above one is an invalid-params error naming the field.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import (
    AliasChoices,
    BeforeValidator,
    Field,
    TypeAdapter,
    ValidationInfo,
    field_validator,
)

from codebeaker_client.models.commands import Command, ExecuteShell
from codebeaker_client.models.wire import WireModel, at_most, unicode_text, validate_env

__all__ = [
    "COMMAND",
    "MEMORY_ALIAS",
    "CancelBody",
    "CancelRequest",
    "CreateSessionRequest",
    "ExecuteRequest",
    "InputRequest",
    "NoParams",
    "RequestId",
    "RunRequest",
    "SessionRef",
]

SessionId = Annotated[str, Field(min_length=1, max_length=256)]
MEMORY_ALIAS = AliasChoices("memoryLimitMB", "memory_limit_mb", "memoryLimitMb")
MAX_SOURCE_BYTES = 10 * 1024 * 1024


def _request_id(value: object) -> object:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError("must be the id of a JSON-RPC call: a string or an integer")
    return value


RequestId = Annotated[int | str, BeforeValidator(_request_id)]
"""The JSON-RPC ``id`` of an earlier call, exactly as it was sent: ``7`` and ``"7"`` are
different ids; ``true``, ``7.5`` or an object name none (invalid params)."""

COMMAND: TypeAdapter[Command] = TypeAdapter(Command)
"""A bare command object (the body of ``POST /api/v1/sessions/{id}/commands``)."""


class NoParams(WireModel):
    pass


class SessionRef(WireModel):
    session_id: SessionId


class ExecuteRequest(WireModel):
    session_id: SessionId
    command: Command
    stream: bool = False
    """Send ``session.output`` notifications as output arrives, and keep stdin open for
    ``session.input`` (``execute_shell`` only)."""

    @property
    def streams(self) -> bool:
        """Whether this call streams: only ``execute_shell`` has output to stream."""
        return self.stream and isinstance(self.command, ExecuteShell)


class InputRequest(WireModel):
    session_id: SessionId
    data: str = ""
    eof: bool = False
    request_id: RequestId | None = None
    """The ``id`` of the streamed ``session.execute`` (or ``session.run_code``) call whose
    stdin takes the data; unset: the session's oldest streamed call whose stdin is open."""

    _text = field_validator("data")(unicode_text)


class CancelBody(WireModel):
    """The body of ``POST /api/v1/sessions/{id}/cancel`` (the session is in the path)."""

    request_id: RequestId | None = None
    """The ``id`` of the ``session.execute`` or ``session.run_code`` call to stop, running
    or queued; unset: every command and cell of the session running now."""


class CancelRequest(WireModel):
    """``session.cancel``."""

    session_id: SessionId
    request_id: RequestId | None = None
    """The ``id`` of the ``session.execute`` or ``session.run_code`` call to stop, running
    or queued; unset: every command and cell of the session running now."""


class _MemoryLimit(WireModel):
    memory_limit_mb: int | None = Field(
        None, ge=64, validation_alias=MEMORY_ALIAS, serialization_alias="memoryLimitMB"
    )
    """Megabytes; at most the server's ``max_memory_mb``, unset means its default."""

    @field_validator("memory_limit_mb")
    @classmethod
    def _memory(cls, value: int | None, info: ValidationInfo) -> int | None:
        return at_most(value, info, "max_memory_mb")


class CreateSessionRequest(_MemoryLimit):
    language: str = Field(min_length=1, max_length=64)
    """A name or alias from the runtime registry."""
    idle_timeout_minutes: float | None = Field(None, gt=0)
    max_lifetime_minutes: float | None = Field(None, gt=0)
    cpu_limit: float | None = Field(None, ge=0.01)
    """Cores."""
    env: dict[str, str] = Field(default_factory=dict, max_length=256)
    """Given to every command of the session (a command's own ``env`` wins)."""

    @field_validator("idle_timeout_minutes")
    @classmethod
    def _idle(cls, value: float | None, info: ValidationInfo) -> float | None:
        return at_most(value, info, "max_idle_timeout_minutes")

    @field_validator("max_lifetime_minutes")
    @classmethod
    def _lifetime(cls, value: float | None, info: ValidationInfo) -> float | None:
        return at_most(value, info, "max_lifetime_minutes")

    @field_validator("cpu_limit")
    @classmethod
    def _cpu(cls, value: float | None, info: ValidationInfo) -> float | None:
        return at_most(value, info, "max_cpu_limit")

    @field_validator("env")
    @classmethod
    def _env(cls, value: dict[str, str]) -> dict[str, str]:
        return validate_env(value)


class RunRequest(_MemoryLimit):
    """``execution.run`` and ``POST /api/v1/execute``: one program in a throwaway sandbox."""

    language: str = Field(min_length=1, max_length=64)
    code: str = Field(max_length=MAX_SOURCE_BYTES)
    stdin: str | None = None
    timeout_seconds: float | None = Field(None, gt=0)
    """At most the server's ``max_command_timeout_seconds``; unset means its default."""

    @field_validator("timeout_seconds")
    @classmethod
    def _timeout(cls, value: float | None, info: ValidationInfo) -> float | None:
        return at_most(value, info, "max_command_timeout_seconds")
