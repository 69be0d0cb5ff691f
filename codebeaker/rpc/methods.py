"""The JSON-RPC methods: validate params, call the session layer, shape the result."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from jsonrpcserver import Error, Result, Success
from pydantic import BaseModel

from codebeaker.commands.models import ExecuteShell
from codebeaker.exceptions import InvalidParamsError
from codebeaker.rpc.errors import error_for
from codebeaker.rpc.models import (
    CreateSessionParams,
    ExecuteParams,
    InputParams,
    NoParams,
    RunParams,
    SessionIdParams,
)
from codebeaker.rpc.streaming import Notify, OutputForwarder, nowhere
from codebeaker.runtimes import RuntimeRegistry
from codebeaker.sessions import OneShotRunner, RunRequest, SessionConfig, SessionManager
from codebeaker.settings import Settings

__all__ = ["METHODS", "Call", "Services"]

P = TypeVar("P", bound=BaseModel)
Handler = Callable[["Call", Any], Awaitable[dict[str, Any]]]
Typed = Callable[["Call", P], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class Services:
    """What every method may use."""

    settings: Settings
    runtimes: RuntimeRegistry
    sessions: SessionManager
    runner: OneShotRunner


@dataclass(frozen=True)
class Call:
    """One request, handed to jsonrpcserver as its context: the services, the request's
    id, and how to send notifications back on the connection it came from."""

    services: Services
    request_id: Any = None
    notify: Notify = nowhere


def _method(
    params_model: type[P],
) -> Callable[[Typed[P]], Any]:
    """Wrap a handler so that it sees validated params and never leaks an exception."""

    def decorate(handler: Typed[P]) -> Any:
        async def method(call: Call, *args: Any, **params: Any) -> Result:
            try:
                if args:
                    raise InvalidParamsError.single(
                        ["params"], "params must be an object (by name), not an array", "type_error"
                    )
                parsed = params_model.model_validate(
                    params, context={"settings": call.services.settings}
                )
                return Success(await handler(call, parsed))
            except Exception as exc:  # every failure becomes a JSON-RPC error, never a traceback
                error = error_for(exc)
                return Error(error.code, error.message, error.data)

        return method

    return decorate


@_method(CreateSessionParams)
async def session_create(call: Call, params: CreateSessionParams) -> dict[str, Any]:
    services, settings = call.services, call.services.settings
    runtime = services.runtimes.get(params.language)
    config = SessionConfig(
        idle_timeout_minutes=params.idle_timeout_minutes or settings.default_idle_timeout_minutes,
        max_lifetime_minutes=params.max_lifetime_minutes or settings.default_max_lifetime_minutes,
        memory_mb=params.memory_limit_mb or settings.default_memory_mb,
        cpu_limit=params.cpu_limit or settings.default_cpu_limit,
        env=params.env,
    )
    session = await services.sessions.create(runtime, config)
    return session.describe()


@_method(ExecuteParams)
async def session_execute(call: Call, params: ExecuteParams) -> dict[str, Any]:
    sessions = call.services.sessions
    if not (params.stream and isinstance(params.command, ExecuteShell)):
        outcome = await sessions.execute(params.session_id, params.command)
        return outcome.to_wire()
    forwarder = OutputForwarder(call.notify, params.session_id, call.request_id)
    try:
        outcome = await sessions.execute(
            params.session_id, params.command, on_output=forwarder.feed, interactive=True
        )
    finally:
        await forwarder.close()  # every notification goes out before the response
    return outcome.to_wire()


@_method(InputParams)
async def session_input(call: Call, params: InputParams) -> dict[str, Any]:
    data = params.data.encode("utf-8", errors="surrogatepass")
    call.services.sessions.send_input(params.session_id, data, params.eof)
    return {"sessionId": params.session_id, "bytes": len(data), "eof": params.eof}


@_method(NoParams)
async def session_list(call: Call, params: NoParams) -> dict[str, Any]:
    sessions = [session.summary() for session in call.services.sessions.list()]
    return {"count": len(sessions), "sessions": sessions}


@_method(SessionIdParams)
async def session_close(call: Call, params: SessionIdParams) -> dict[str, Any]:
    await call.services.sessions.close(params.session_id)
    return {"sessionId": params.session_id, "closed": True}


@_method(RunParams)
async def execution_run(call: Call, params: RunParams) -> dict[str, Any]:
    services, settings = call.services, call.services.settings
    request = RunRequest(
        runtime=services.runtimes.get(params.language),
        code=params.code,
        stdin=params.stdin,
        timeout_seconds=params.timeout_seconds or settings.default_command_timeout_seconds,
        memory_mb=params.memory_limit_mb or settings.default_memory_mb,
    )
    return await services.runner.run(request)


METHODS: dict[str, Handler] = {
    "session.create": session_create,
    "session.execute": session_execute,
    "session.input": session_input,
    "session.list": session_list,
    "session.close": session_close,
    "execution.run": execution_run,
}
