"""The wire models every door shares: requests, results and error bodies.

The JSON-RPC methods, the REST routes and (later) the SDK validate and answer with these
and nothing else, so a field is named and checked in exactly one place.
"""

from codebeaker.api.commands import Command, CommandOutcome, CommandResult
from codebeaker.api.errors import ErrorData, FieldError, Problem
from codebeaker.api.executions import (
    ExecutionAccepted,
    ExecutionError,
    ExecutionList,
    ExecutionQuery,
    ExecutionRecord,
    ExecutionStatus,
    ExecutionSummary,
)
from codebeaker.api.jsonrpc import (
    OutputChunk,
    RpcError,
    RpcErrorResponse,
    RpcNotification,
    SessionEvent,
    WatchResult,
)
from codebeaker.api.requests import (
    COMMAND,
    CreateSessionRequest,
    ExecuteRequest,
    InputRequest,
    NoParams,
    RunRequest,
    SessionRef,
)
from codebeaker.api.results import (
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
from codebeaker.api.wire import WireModel, context_for

__all__ = [
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
    "context_for",
]
