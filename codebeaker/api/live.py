"""Messages of the interactive-run doors (RUN.md): framing A (``/ws``, seed 000) and
framing B (``POST /session`` + ``/ws/session/{id}``, seed 004).

Framing A's names are the seed's own snake_case (``compile_cmd``, ``return_code``), so these
models keep field names as they are instead of WireModel's camelCase; unknown fields are
still refused. Sizes are checked against the server's settings, failing closed.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from codebeaker_client.models.wire import SETTINGS_CONTEXT, WireModel, no_nul
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationInfo,
    field_validator,
)

from codebeaker.settings import Settings

__all__ = [
    "CLIENT_MESSAGE",
    "ClientMessage",
    "CodeMessage",
    "CompileErrorMessage",
    "CompileSuccessMessage",
    "EchoMessage",
    "EndReason",
    "EofMessage",
    "ErrorMessage",
    "ExitCodeMessage",
    "ExitMessage",
    "InputMessage",
    "KillMessage",
    "LiveMessage",
    "OutputMessage",
    "PendingRunCreated",
    "PendingRunRequest",
    "Stream",
]

EndReason = Literal["timeout", "killed", "output_limit"]
Stream = Literal["stdout", "stderr"]
COMMAND_LINE = Field(None, min_length=1, max_length=4096)


def within_bytes(value: str, info: ValidationInfo, maximum: str) -> str:
    """A text whose UTF-8 size is at most the server setting ``maximum`` (fail closed)."""
    settings = (info.context or {}).get(SETTINGS_CONTEXT)
    if not isinstance(settings, Settings):
        raise ValueError(f"cannot be checked against the server maximum {maximum!r} here")
    limit: int = getattr(settings, maximum)
    if len(value) > limit or len(value.encode("utf-8", "surrogatepass")) > limit:
        raise ValueError(f"must be at most {limit} bytes (server maximum)")
    return value


class LiveMessage(BaseModel):
    """A JSON text frame of the interactive doors: field names exactly as the seeds spell them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def to_wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


# ---------------------------------------------------------------- client → server


class CodeMessage(LiveMessage):
    """Start a run (framing A). ``compile_cmd`` and ``command`` are split like shell words."""

    type: Literal["code"]
    language: str = Field(min_length=1, max_length=64)
    source: str
    filename: str | None = Field(None, min_length=1, max_length=255)
    """One file name inside ``/workspace``: no directory, not ``.`` or ``..``."""
    compile_cmd: str | None = COMMAND_LINE
    command: str | None = COMMAND_LINE

    @field_validator("source")
    @classmethod
    def _source(cls, value: str, info: ValidationInfo) -> str:
        return within_bytes(value, info, "max_source_bytes")

    @field_validator("filename")
    @classmethod
    def _filename(cls, value: str | None) -> str | None:
        if value is not None and ("/" in value or value in (".", "..")):
            raise ValueError("must be a plain file name, without a directory")
        return None if value is None else no_nul(value)

    @field_validator("compile_cmd", "command")
    @classmethod
    def _command(cls, value: str | None) -> str | None:
        return None if value is None else no_nul(value)


class InputMessage(LiveMessage):
    """Written to the program's stdin (both framings)."""

    type: Literal["input"]
    data: str

    @field_validator("data")
    @classmethod
    def _data(cls, value: str, info: ValidationInfo) -> str:
        return within_bytes(value, info, "max_input_bytes")


class EofMessage(LiveMessage):
    """Close the program's stdin (extension)."""

    type: Literal["eof"]


class KillMessage(LiveMessage):
    """End the run now (extension)."""

    type: Literal["kill"]


ClientMessage = Annotated[
    CodeMessage | InputMessage | EofMessage | KillMessage, Field(discriminator="type")
]
CLIENT_MESSAGE: TypeAdapter[ClientMessage] = TypeAdapter(ClientMessage)


class PendingRunRequest(WireModel):
    """``POST /session`` (framing B): a run that starts when its socket connects."""

    language: str = Field(min_length=1, max_length=64)
    code: str
    stdin: str | None = None

    @field_validator("code")
    @classmethod
    def _code(cls, value: str, info: ValidationInfo) -> str:
        return within_bytes(value, info, "max_source_bytes")

    @field_validator("stdin")
    @classmethod
    def _stdin(cls, value: str | None, info: ValidationInfo) -> str | None:
        return None if value is None else within_bytes(value, info, "run_input_limit_bytes")


# ---------------------------------------------------------------- server → client


class PendingRunCreated(WireModel):
    """``201`` of ``POST /session``: connect to ``/ws/session/{sessionId}`` to start it."""

    session_id: str


class OutputMessage(LiveMessage):
    type: Stream
    data: str


class CompileSuccessMessage(LiveMessage):
    type: Literal["compile_success"] = "compile_success"


class CompileErrorMessage(LiveMessage):
    """The compiler's output (both of its streams) and status; the run ends after it."""

    type: Literal["compile_error"] = "compile_error"
    stderr: str
    return_code: int


class EchoMessage(LiveMessage):
    """The input the server received, for terminals without local echo."""

    type: Literal["echo"] = "echo"
    data: str


class ExitMessage(LiveMessage):
    """Framing A's last message; ``reason`` only when the program did not end by itself."""

    type: Literal["exit"] = "exit"
    return_code: int
    reason: EndReason | None = None


class ExitCodeMessage(LiveMessage):
    """Framing B's last message."""

    type: Literal["exit"] = "exit"
    code: int


class ErrorMessage(LiveMessage):
    """``"<kind>: <what>"``, naming the field at fault."""

    type: Literal["error"] = "error"
    data: str
