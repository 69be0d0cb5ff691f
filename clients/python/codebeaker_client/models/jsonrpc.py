"""The JSON-RPC envelopes the server writes itself (jsonrpcserver writes the replies of
dispatched calls): errors answered before dispatch, and notifications."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, SerializeAsAny

from codebeaker_client.models.errors import ErrorData
from codebeaker_client.models.wire import WireModel, unset

__all__ = [
    "OutputChunk",
    "RpcError",
    "RpcErrorResponse",
    "RpcNotification",
    "RpcRequest",
    "SessionEvent",
    "WatchResult",
]


class RpcError(WireModel):
    code: int
    message: str
    data: ErrorData


class RpcErrorResponse(WireModel):
    """An error answered outside dispatch (frame too large, unauthorized)."""

    jsonrpc: Literal["2.0"] = "2.0"
    error: RpcError
    id: Any = None


class RpcRequest(WireModel):
    """What a client sends: without ``id`` it is a notification, answered by nothing."""

    jsonrpc: Literal["2.0"] = "2.0"
    method: str
    params: Any = Field(None, exclude_if=unset)
    id: int | str | None = Field(None, exclude_if=unset)


class RpcNotification(WireModel):
    jsonrpc: Literal["2.0"] = "2.0"
    method: str
    params: SerializeAsAny[WireModel]


class OutputChunk(WireModel):
    """``session.output``: a piece of a streamed command's output."""

    session_id: str
    request_id: Any
    """The id of the ``session.execute`` request the output belongs to."""
    stream: Literal["stdout", "stderr"]
    data: str


class SessionEvent(WireModel):
    """``session.event``, to the connections watching a session (``session.watch``)."""

    session_id: str
    event: Literal["command_started", "command_finished", "session_closed"]
    request_id: Any = Field(None, exclude_if=unset)
    """The id of the ``session.execute`` request the command came from (its output's too)."""
    command: str | None = Field(None, exclude_if=unset)
    """The command's ``type``."""
    argv: list[str] | None = Field(None, exclude_if=unset)
    path: str | None = Field(None, exclude_if=unset)
    success: bool | None = Field(None, exclude_if=unset)
    exit_code: int | None = Field(None, exclude_if=unset)
    duration_ms: int | None = Field(None, exclude_if=unset)
    reason: str | None = Field(None, exclude_if=unset)
    """With ``session_closed``: why; the watch ends with this event."""


class WatchResult(WireModel):
    """``session.watch`` and ``session.unwatch``."""

    session_id: str
    watching: bool
