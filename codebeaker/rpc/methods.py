"""The JSON-RPC methods: each validates its params model, calls the service on the tenant's
behalf, and notes on its ``Call`` what the request's audit line names (``dispatch.answer``
charges the tenant's rate and writes that line for every request, a method's or not)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
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
from codebeaker.errors import describe
from codebeaker.exceptions import InvalidParamsError
from codebeaker.rpc.streaming import Notify, OutputForwarder, nowhere
from codebeaker.rpc.watch import Watches
from codebeaker.service import SandboxService
from codebeaker.tenants import CURRENT_TENANT, Tenant

__all__ = ["METHODS", "Call", "Trace"]

P = TypeVar("P", bound=BaseModel)
Handler = Callable[["Call", Any], Awaitable[Result]]
Typed = Callable[["Call", P], Awaitable[WireModel]]


@dataclass
class Trace:
    """What a request's audit line names beyond its method, filled in by the method that
    ran it; ``outcome`` stays None for a request no method ran."""

    outcome: str | None = None
    """``ok`` or the error's kind."""
    session_id: str | None = None
    command: str | None = None


@dataclass(frozen=True)
class Call:
    """One request, handed to jsonrpcserver as its context: the service, the request's
    id, how to send notifications back on the connection it came from, and the tenant
    whose key opened that connection."""

    service: SandboxService
    request_id: Any = None
    notify: Notify = nowhere
    watches: Watches | None = None
    """The connection's watches (``session.watch``); None off a connection."""
    tenant: Tenant = field(default_factory=CURRENT_TENANT.get)
    """Set by the auth middleware for the connection; the local tenant off one."""
    trace: Trace = field(default_factory=Trace)


METHODS: dict[str, Handler] = {}


def _method(name: str, params_model: type[P]) -> Callable[[Typed[P]], Handler]:
    """Register a handler that sees validated params and never leaks an exception."""

    def decorate(handler: Typed[P]) -> Handler:
        async def method(call: Call, *args: Any, **params: Any) -> Result:
            parsed: BaseModel | None = None
            result: WireModel | None = None
            try:
                if args:
                    raise InvalidParamsError.single(
                        ["params"], "params must be an object (by name), not an array", "type_error"
                    )
                parsed = parse(params_model, params, call.service.settings)
                result = await handler(call, parsed)
                outcome: Result = Success(result.to_wire())
                kind = "ok"
            except Exception as exc:  # every failure becomes a JSON-RPC error, never a traceback
                described = describe(exc)
                outcome = Error(described.code, described.message, described.data.to_wire())
                kind = described.data.kind
            call.trace.outcome = kind
            call.trace.session_id = getattr(parsed, "session_id", None) or getattr(
                result, "session_id", None
            )
            call.trace.command = _command_type(parsed)
            return outcome

        METHODS[name] = method
        return method

    return decorate


def _command_type(params: BaseModel | None) -> str | None:
    """What the audit log names: a command's type, a run's language (never its content)."""
    if isinstance(params, ExecuteRequest):
        return params.command.type
    if isinstance(params, RunCodeRequest):
        return "run_code"
    if isinstance(params, RunRequest):
        return params.language
    return None


@_method("session.create", CreateSessionRequest)
async def session_create(call: Call, params: CreateSessionRequest) -> SessionInfo:
    return await call.service.create_session(params, tenant=call.tenant)


@contextlib.asynccontextmanager
async def _streaming(call: Call, session_id: str) -> AsyncIterator[OutputForwarder]:
    forwarder = OutputForwarder(call.notify, session_id, call.request_id)
    try:
        yield forwarder
    finally:
        await forwarder.close()  # every notification goes out before the response


@_method("session.execute", ExecuteRequest)
async def session_execute(call: Call, params: ExecuteRequest) -> CommandOutcome:
    tenant = call.tenant
    if not params.streams:
        return await call.service.execute(params, call_id=call.request_id, tenant=tenant)
    async with _streaming(call, params.session_id) as forwarder:
        return await call.service.execute(
            params, on_output=forwarder.feed, call_id=call.request_id, tenant=tenant
        )


@_method("session.input", InputRequest)
async def session_input(call: Call, params: InputRequest) -> InputResult:
    return call.service.send_input(params, tenant=call.tenant)


@_method("session.cancel", CancelRequest)
async def session_cancel(call: Call, params: CancelRequest) -> CancelResult:
    return await call.service.cancel(params, tenant=call.tenant)


@_method("session.list", NoParams)
async def session_list(call: Call, params: NoParams) -> SessionList:
    return call.service.list_sessions(tenant=call.tenant)


@_method("session.close", SessionRef)
async def session_close(call: Call, params: SessionRef) -> CloseResult:
    return await call.service.close_session(params.session_id, tenant=call.tenant)


def _watches(call: Call) -> Watches:
    if call.watches is None:
        raise InvalidParamsError.single(["sessionId"], "watching needs a WebSocket connection")
    return call.watches


@_method("session.watch", SessionRef)
async def session_watch(call: Call, params: SessionRef) -> WatchResult:
    return _watches(call).watch(params, call.tenant)


@_method("session.unwatch", SessionRef)
async def session_unwatch(call: Call, params: SessionRef) -> WatchResult:
    return await _watches(call).unwatch(params, call.tenant)


@_method("context.create", CreateContextRequest)
async def context_create(call: Call, params: CreateContextRequest) -> ContextInfo:
    return await call.service.create_context(params, tenant=call.tenant)


@_method("context.list", SessionRef)
async def context_list(call: Call, params: SessionRef) -> ContextList:
    return call.service.list_contexts(params, tenant=call.tenant)


@_method("context.restart", ContextRef)
async def context_restart(call: Call, params: ContextRef) -> ContextInfo:
    return await call.service.restart_context(params, tenant=call.tenant)


@_method("context.close", ContextRef)
async def context_close(call: Call, params: ContextRef) -> ContextClosed:
    return await call.service.close_context(params, tenant=call.tenant)


@_method("session.run_code", RunCodeRequest)
async def session_run_code(call: Call, params: RunCodeRequest) -> RunCodeResult:
    tenant = call.tenant
    if not params.stream:
        return await call.service.run_code(params, call_id=call.request_id, tenant=tenant)
    async with _streaming(call, params.session_id) as forwarder:
        return await call.service.run_code(
            params, forwarder.feed, forwarder.show, call_id=call.request_id, tenant=tenant
        )


@_method("session.interrupt", ContextRef)
async def session_interrupt(call: Call, params: ContextRef) -> InterruptResult:
    return await call.service.interrupt(params, tenant=call.tenant)


@_method("execution.run", RunRequest)
async def execution_run(call: Call, params: RunRequest) -> RunResult:
    return await call.service.run(params, tenant=call.tenant)
