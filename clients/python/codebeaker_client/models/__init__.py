"""The wire models every door shares: requests, results and error bodies.

The server's JSON-RPC methods and REST routes, and the SDK, validate and answer with these
and nothing else, so a field is named and checked in exactly one place.
"""

from codebeaker_client.models.commands import Command, CommandOutcome, CommandResult
from codebeaker_client.models.errors import ErrorData, FieldError, Problem
from codebeaker_client.models.executions import (
    ExecutionAccepted,
    ExecutionError,
    ExecutionList,
    ExecutionQuery,
    ExecutionRecord,
    ExecutionStatus,
    ExecutionSummary,
)
from codebeaker_client.models.jsonrpc import (
    OutputChunk,
    RpcError,
    RpcErrorResponse,
    RpcNotification,
    SessionEvent,
    WatchResult,
)
from codebeaker_client.models.requests import (
    COMMAND,
    CancelBody,
    CancelRequest,
    CreateSessionRequest,
    ExecuteRequest,
    InputRequest,
    NoParams,
    RequestId,
    RunRequest,
    SessionRef,
)
from codebeaker_client.models.results import (
    CancelResult,
    CloseResult,
    CompileResult,
    Health,
    InputResult,
    LanguageInfo,
    LanguageList,
    PoolReadiness,
    RunResult,
    SessionConfig,
    SessionInfo,
    SessionList,
    SessionSummary,
)
from codebeaker_client.models.wire import CLIENT_CONTEXT, WireModel

__all__ = [
    "CLIENT_CONTEXT",
    "COMMAND",
    "CancelBody",
    "CancelRequest",
    "CancelResult",
    "CloseResult",
    "Command",
    "CommandOutcome",
    "CommandResult",
    "CompileResult",
    "CreateSessionRequest",
    "ErrorData",
    "ExecuteRequest",
    "ExecutionAccepted",
    "ExecutionError",
    "ExecutionList",
    "ExecutionQuery",
    "ExecutionRecord",
    "ExecutionStatus",
    "ExecutionSummary",
    "FieldError",
    "Health",
    "InputRequest",
    "InputResult",
    "LanguageInfo",
    "LanguageList",
    "NoParams",
    "OutputChunk",
    "PoolReadiness",
    "Problem",
    "RequestId",
    "RpcError",
    "RpcErrorResponse",
    "RpcNotification",
    "RunRequest",
    "RunResult",
    "SessionConfig",
    "SessionEvent",
    "SessionInfo",
    "SessionList",
    "SessionRef",
    "SessionSummary",
    "WatchResult",
    "WireModel",
]
