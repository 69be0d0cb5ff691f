"""CodeBeaker's Python SDK: sandboxed sessions, commands, files and stateful code over one
WebSocket. ``AsyncCodeBeaker`` for asyncio, ``CodeBeaker`` for everything else.

    from codebeaker_client import CodeBeaker

    with CodeBeaker("ws://127.0.0.1:5000/ws/jsonrpc") as client:
        with client.create_session("python") as session:
            print(session.exec("echo hi").stdout)
            print(session.run_code("x = 6 * 7\\nx").text)
"""

from codebeaker_client import errors
from codebeaker_client.client import AsyncCodeBeaker
from codebeaker_client.connection import Connection
from codebeaker_client.errors import (
    CodeBeakerError,
    CommandFailed,
    CommandTimeout,
    ConnectionLost,
    InvalidParams,
    LimitExceeded,
    SessionNotFound,
    SessionTerminated,
    Unauthorized,
)
from codebeaker_client.files import AsyncFiles
from codebeaker_client.process import AsyncProcess
from codebeaker_client.results import ExecResult, Execution, Result
from codebeaker_client.session import AsyncContexts, AsyncSession
from codebeaker_client.sync import CodeBeaker, Contexts, Files, Process, Session

__all__ = [
    "AsyncCodeBeaker",
    "AsyncContexts",
    "AsyncFiles",
    "AsyncProcess",
    "AsyncSession",
    "CodeBeaker",
    "CodeBeakerError",
    "CommandFailed",
    "CommandTimeout",
    "Connection",
    "ConnectionLost",
    "Contexts",
    "ExecResult",
    "Execution",
    "Files",
    "InvalidParams",
    "LimitExceeded",
    "Process",
    "Result",
    "Session",
    "SessionNotFound",
    "SessionTerminated",
    "Unauthorized",
    "errors",
]
