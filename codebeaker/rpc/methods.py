"""The JSON-RPC methods: each validates its params model and calls the service."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from codebeaker_client.models import (
    CancelRequest,
    CancelResult,
    CloseResult,
    CommandOutcome,
    CreateSessionRequest,
    ExecuteRequest,
    InputRequest,
    InputResult,
    NoParams,
    RunRequest,
    RunResult,
    SessionInfo,
    SessionList,
    SessionRef,
    WatchResult,
    WireModel,
)
from codebeaker_client.models.contexts import (
    ContextClosed,
    ContextInfo,
    ContextList,
    ContextRef,
    CreateContextRequest,
    InterruptResult,
    RunCodeRequest,
    RunCodeResult,
)
from jsonrpcserver import Error, Result, Success
from pydantic import BaseModel

from codebeaker.api.wire import parse
from codebeaker.errors import rpc_error
from codebeaker.exceptions import InvalidParamsError
from codebeaker.rpc.streaming import Notify, OutputForwarder, nowhere
from codebeaker.rpc.watch import Watches
from codebeaker.service import SandboxService

__all__ = ["METHODS", "Call"]

P = TypeVar("P", bound=BaseModel)
Handler = Callable[["Call", Any], Awaitable[Result]]
Typed = Callable[["Call", P], Awaitable[WireModel]]


@dataclass(frozen=True)
class Call:
    """One request, handed to jsonrpcserver as its context: the service, the request's
    id, and how to send notifications back on the connection it came from."""

    service: SandboxService
    request_id: Any = None
    notify: Notify = nowhere
    watches: Watches | None = None
    """The connection's watches (``session.watch``); None off a connection."""


def _method(params_model: type[P]) -> Callable[[Typed[P]], Handler]:
    """Wrap a handler so that it sees validated params and never leaks an exception."""

    def decorate(handler: Typed[P]) -> Handler:
        async def method(call: Call, *args: Any, **params: Any) -> Result:
            try:
                if args:
                    raise InvalidParamsError.single(
                        ["params"], "params must be an object (by name), not an array", "type_error"
                    )
                parsed = parse(params_model, params, call.service.settings)
                return Success((await handler(call, parsed)).to_wire())
            except Exception as exc:  # every failure becomes a JSON-RPC error, never a traceback
                error = rpc_error(exc)
                return Error(error.code, error.message, error.data.to_wire())

        return method

    return decorate


@_method(CreateSessionRequest)
async def session_create(call: Call, params: CreateSessionRequest) -> SessionInfo:
    return await call.service.create_session(params)


@contextlib.asynccontextmanager
async def _streaming(call: Call, session_id: str) -> AsyncIterator[OutputForwarder]:
    forwarder = OutputForwarder(call.notify, session_id, call.request_id)
    try:
        yield forwarder
    finally:
        await forwarder.close()  # every notification goes out before the response


@_method(ExecuteRequest)
async def session_execute(call: Call, params: ExecuteRequest) -> CommandOutcome:
    if not params.streams:
        return await call.service.execute(params, call_id=call.request_id)
    async with _streaming(call, params.session_id) as forwarder:
        return await call.service.execute(params, on_output=forwarder.feed, call_id=call.request_id)


@_method(InputRequest)
async def session_input(call: Call, params: InputRequest) -> InputResult:
    return call.service.send_input(params)


@_method(CancelRequest)
async def session_cancel(call: Call, params: CancelRequest) -> CancelResult:
    return await call.service.cancel(params)


@_method(NoParams)
async def session_list(call: Call, params: NoParams) -> SessionList:
    return call.service.list_sessions()


@_method(SessionRef)
async def session_close(call: Call, params: SessionRef) -> CloseResult:
    return await call.service.close_session(params.session_id)


def _watches(call: Call) -> Watches:
    if call.watches is None:
        raise InvalidParamsError.single(["sessionId"], "watching needs a WebSocket connection")
    return call.watches


@_method(SessionRef)
async def session_watch(call: Call, params: SessionRef) -> WatchResult:
    return _watches(call).watch(params)


@_method(SessionRef)
async def session_unwatch(call: Call, params: SessionRef) -> WatchResult:
    return await _watches(call).unwatch(params)


@_method(CreateContextRequest)
async def context_create(call: Call, params: CreateContextRequest) -> ContextInfo:
    return await call.service.create_context(params)


@_method(SessionRef)
async def context_list(call: Call, params: SessionRef) -> ContextList:
    return call.service.list_contexts(params)


@_method(ContextRef)
async def context_restart(call: Call, params: ContextRef) -> ContextInfo:
    return await call.service.restart_context(params)


@_method(ContextRef)
async def context_close(call: Call, params: ContextRef) -> ContextClosed:
    return await call.service.close_context(params)


@_method(RunCodeRequest)
async def session_run_code(call: Call, params: RunCodeRequest) -> RunCodeResult:
    if not params.stream:
        return await call.service.run_code(params, call_id=call.request_id)
    async with _streaming(call, params.session_id) as forwarder:
        return await call.service.run_code(
            params, forwarder.feed, forwarder.show, call_id=call.request_id
        )


@_method(ContextRef)
async def session_interrupt(call: Call, params: ContextRef) -> InterruptResult:
    return await call.service.interrupt(params)


@_method(RunRequest)
async def execution_run(call: Call, params: RunRequest) -> RunResult:
    return await call.service.run(params)


METHODS: dict[str, Handler] = {
    "session.create": session_create,
    "session.execute": session_execute,
    "session.input": session_input,
    "session.cancel": session_cancel,
    "session.list": session_list,
    "session.close": session_close,
    "session.watch": session_watch,
    "session.unwatch": session_unwatch,
    "session.run_code": session_run_code,
    "session.interrupt": session_interrupt,
    "context.create": context_create,
    "context.list": context_list,
    "context.restart": context_restart,
    "context.close": context_close,
    "execution.run": execution_run,
}
