"""Params of each JSON-RPC method: camelCase on the wire, snake_case accepted.

Server maxima come from the validation context, so a value above one is an
invalid-params error naming the field, never silently clamped.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AliasChoices, Field, ValidationInfo, field_validator

from codebeaker.commands.models import Command, WireModel, at_most, validate_env

__all__ = [
    "CreateSessionParams",
    "ExecuteParams",
    "InputParams",
    "NoParams",
    "RunParams",
    "SessionIdParams",
]

SessionId = Annotated[str, Field(min_length=1, max_length=256)]
MEMORY_ALIAS = AliasChoices("memoryLimitMB", "memory_limit_mb", "memoryLimitMb")


class NoParams(WireModel):
    pass


class SessionIdParams(WireModel):
    session_id: SessionId


class ExecuteParams(WireModel):
    session_id: SessionId
    command: Command
    stream: bool = False
    """Send ``session.output`` notifications as output arrives, and keep stdin open for
    ``session.input`` (``execute_shell`` only)."""


class InputParams(WireModel):
    session_id: SessionId
    data: str = ""
    eof: bool = False


class _MemoryParams(WireModel):
    memory_limit_mb: int | None = Field(None, ge=64, validation_alias=MEMORY_ALIAS)

    @field_validator("memory_limit_mb")
    @classmethod
    def _memory(cls, value: int | None, info: ValidationInfo) -> int | None:
        at_most(value, info, "max_memory_mb")
        return value


class CreateSessionParams(_MemoryParams):
    language: str = Field(min_length=1, max_length=64)
    idle_timeout_minutes: float | None = Field(None, gt=0)
    max_lifetime_minutes: float | None = Field(None, gt=0)
    cpu_limit: float | None = Field(None, gt=0)
    env: dict[str, str] = Field(default_factory=dict, max_length=256)

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


class RunParams(_MemoryParams):
    language: str = Field(min_length=1, max_length=64)
    code: str = Field(max_length=10 * 1024 * 1024)
    stdin: str | None = None
    timeout_seconds: float | None = Field(None, gt=0)

    @field_validator("timeout_seconds")
    @classmethod
    def _timeout(cls, value: float | None, info: ValidationInfo) -> float | None:
        return at_most(value, info, "max_command_timeout_seconds")
