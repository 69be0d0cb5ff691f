"""The JSON-RPC envelopes the server writes itself (jsonrpcserver writes the replies of
dispatched calls): errors answered before dispatch, and notifications."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import SerializeAsAny

from codebeaker.api.errors import ErrorData
from codebeaker.api.wire import WireModel

__all__ = ["OutputChunk", "RpcError", "RpcErrorResponse", "RpcNotification"]


class RpcError(WireModel):
    code: int
    message: str
    data: ErrorData


class RpcErrorResponse(WireModel):
    """An error answered outside dispatch (frame too large, unauthorized)."""

    jsonrpc: Literal["2.0"] = "2.0"
    error: RpcError
    id: Any = None


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
