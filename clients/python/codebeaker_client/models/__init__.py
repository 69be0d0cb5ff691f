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
    CreateSessionRequest,
    ExecuteRequest,
    InputRequest,
    NoParams,
    RunRequest,
    SessionRef,
)
from codebeaker_client.models.results import (
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
from codebeaker_client.models.wire import CLIENT_CONTEXT, WireModel, build

__all__ = [
    "CLIENT_CONTEXT",
    "COMMAND",
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
    "build",
]
