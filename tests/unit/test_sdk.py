"""The SDK without Docker: error mapping, client-side validation, result decoding, and the
connection against a small in-process WebSocket server that answers as scripted."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from codebeaker_client import CodeBeaker, errors
from codebeaker_client.connection import CLOSED, Connection, parse_reply
from codebeaker_client.models import CreateSessionRequest, NoParams, SessionList
from codebeaker_client.models.commands import CommandOutcome, ShellResult
from codebeaker_client.models.contexts import DisplayData, RunCodeResult
from codebeaker_client.params import build
from codebeaker_client.results import ExecResult, Execution
from codebeaker_client.session import shell_command
from websockets.asyncio.server import ServerConnection, serve

Script = Callable[[ServerConnection, dict[str, Any]], Awaitable[None]]


def rpc_error(kind: str, **data: Any) -> dict[str, Any]:
    return {"code": -32000, "message": f"{kind} happened", "data": {"kind": kind, **data}}


@pytest.mark.parametrize(
    ("kind", "cls", "retryable"),
    [
        ("session_not_found", errors.SessionNotFound, False),
        ("session_terminated", errors.SessionTerminated, False),
        ("unauthorized", errors.Unauthorized, False),
        ("sandbox_unavailable", errors.SandboxUnavailable, True),
        ("shutting_down", errors.ShuttingDown, True),
        ("input_closed", errors.InputClosed, False),
        ("context_not_found", errors.ContextNotFound, False),
        ("contexts_unsupported", errors.ContextsUnsupported, False),
        ("internal_error", errors.ServerError, False),
    ],
)
def test_every_kind_has_its_class(kind: str, cls: type[Exception], retryable: bool) -> None:
    error = errors.for_rpc_error(rpc_error(kind))
    assert type(error) is cls
    assert error.retryable is retryable
    assert error.code == -32000
    assert str(error) == f"{kind} happened"


def test_errors_carry_their_data() -> None:
    limited = errors.for_rpc_error(rpc_error("limit_exceeded", limit="sessions", retryAfter=2.5))
    assert isinstance(limited, errors.LimitExceeded)
    assert (limited.limit, limited.retry_after, limited.retryable) == ("sessions", 2.5, True)
    hard = errors.for_rpc_error(rpc_error("limit_exceeded", limit="message_size"))
    assert isinstance(hard, errors.LimitExceeded)
    assert hard.retryable is False
    invalid = errors.for_rpc_error(
        rpc_error("invalid_params", errors=[{"loc": ["language"], "msg": "bad", "type": "x"}])
    )
    assert isinstance(invalid, errors.InvalidParams)
    assert invalid.errors[0].loc == ["language"]
    unsupported = errors.for_rpc_error(rpc_error("unsupported_language", supported=["python"]))
    assert isinstance(unsupported, errors.UnsupportedLanguage)
    assert unsupported.supported == ["python"]
    internal = errors.for_rpc_error(rpc_error("internal_error", errorId="abc"))
    assert isinstance(internal, errors.ServerError)
    assert internal.error_id == "abc"


def test_command_errors() -> None:
    result = ExecResult("", "", 1, False, False, 3)
    failed = errors.for_command("nonzero_exit: sh exited with code 1", result)
    assert isinstance(failed, errors.CommandFailed)
    assert failed.result is result
    assert isinstance(errors.for_command("timeout: past 1s", result), errors.CommandTimeout)
    assert not errors.for_command("agent_lost: gone", result).retryable  # it may have run
    missing = errors.for_command("file_not_found: /workspace/x")
    assert isinstance(missing, errors.FileError)
    assert missing.command_kind == "file_not_found"
    assert str(missing) == "file_not_found: /workspace/x"
    assert isinstance(errors.ConnectionLost("x"), ConnectionError)
    assert errors.ConnectionLost("x", sent=False).retryable
    assert not errors.ConnectionLost("x", sent=True).retryable
    assert isinstance(errors.for_rpc_error(rpc_error("session_not_found")), LookupError)


def test_replies_from_a_newer_or_broken_server() -> None:
    listing = parse_reply(SessionList, {"count": 0, "sessions": [], "addedLater": 1})
    assert listing.count == 0
    with pytest.raises(errors.ServerError) as bad:
        parse_reply(SessionList, {"count": "many"})
    assert bad.value.server_kind == "bad_reply"
    bare = errors.for_rpc_error({"code": -32603, "message": "boom"})
    assert isinstance(bare, errors.ServerError)
    assert str(bare) == "boom"
    hinted = errors.for_rpc_error(rpc_error("session_not_found", hint="new field"))
    assert isinstance(hinted, errors.SessionNotFound)
    assert isinstance(errors.for_rpc_error("nonsense"), errors.ServerError)


def test_client_side_validation_names_wire_fields() -> None:
    with pytest.raises(errors.InvalidParams) as bad:
        build(CreateSessionRequest, language="", memory_limit_mb=1)
    assert sorted(tuple(error.loc) for error in bad.value.errors) == [
        ("language",),
        ("memoryLimitMB",),
    ]
    # The server's maxima are the server's to check: a huge value passes the client.
    request = build(CreateSessionRequest, language="python", memory_limit_mb=10**9)
    assert request.to_wire()["memoryLimitMB"] == 10**9
    with pytest.raises(errors.InvalidParams, match="cmd"):
        shell_command([], None, None, None, None)
    command = shell_command("echo $HOME", "/tmp", {"A": "1"}, None, 2.5)
    assert (command.command_name, command.args) == ("sh", ["-c", "echo $HOME"])
    assert (command.working_directory, command.timeout_seconds) == ("/tmp", 2.5)


def test_results_decode() -> None:
    shell = ShellResult(stdout="x", stderr="", exit_code=0, timed_out=False, truncated=False)
    result = ExecResult.from_outcome(
        CommandOutcome(success=True, result=shell, error=None, duration_ms=4)
    )
    assert result.ok
    assert result.duration_ms == 4
    assert not ExecResult("", "", 0, True, False, 1).ok
    png = base64.b64encode(b"\x89PNG").decode()
    cell = RunCodeResult(
        session_id="s",
        context_id="default",
        status="ok",
        execution_count=1,
        stdout="",
        stderr="",
        results=[
            DisplayData(kind="display", data={"text/plain": "<Figure>", "image/png": png}),
            DisplayData(kind="result", data={"text/plain": "42", "application/json": [1]}),
        ],
        error=None,
        state_preserved=True,
        duration_ms=2,
        truncated=False,
    )
    execution = Execution.from_wire(cell)
    assert execution.ok
    assert execution.text == "42"
    assert execution.results[0].png == b"\x89PNG"
    assert execution.results[1].json == [1]
    assert execution.results[0].html is None


# -- the connection, against a scripted server ------------------------------------------


@pytest.fixture
async def scripted() -> AsyncIterator[Callable[[Script], Awaitable[str]]]:
    servers: list[Any] = []

    async def start(script: Script) -> str:
        async def handler(websocket: ServerConnection) -> None:
            async for frame in websocket:
                await script(websocket, json.loads(frame))

        server = await serve(handler, "127.0.0.1", 0)
        servers.append(server)
        port = next(iter(server.sockets)).getsockname()[1]
        return f"ws://127.0.0.1:{port}"

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


async def test_replies_and_output_are_routed_by_id(
    scripted: Callable[[Script], Awaitable[str]],
) -> None:
    async def script(websocket: ServerConnection, request: dict[str, Any]) -> None:
        key = request["id"]
        if request["method"] == "slow":
            await asyncio.sleep(0.2)
        output = {"sessionId": "s", "requestId": key, "stream": "stdout", "data": f"{key}"}
        await websocket.send(
            json.dumps({"jsonrpc": "2.0", "method": "session.output", "params": output})
        )
        await websocket.send(json.dumps({"jsonrpc": "2.0", "id": "unknown", "result": 0}))
        await websocket.send(json.dumps({"jsonrpc": "2.0", "id": key, "result": request["method"]}))

    connection = Connection(await scripted(script))
    heard: list[tuple[str, Any]] = []
    slow = asyncio.ensure_future(
        connection.exchange(
            "slow", listener=lambda _, params: heard.append(("slow", params["data"]))
        )
    )
    fast = await connection.exchange(
        "fast", listener=lambda _, params: heard.append(("fast", params["data"]))
    )
    assert fast["result"] == "fast"
    assert not slow.done()
    assert (await slow)["result"] == "slow"
    assert sorted(name for name, _ in heard) == ["fast", "slow"]
    assert (await connection.next_unsolicited(1))["id"] == "unknown"
    await connection.close()


async def test_a_failing_listener_fails_only_its_call(
    scripted: Callable[[Script], Awaitable[str]],
) -> None:
    async def script(websocket: ServerConnection, request: dict[str, Any]) -> None:
        key = request["id"]
        output = {"sessionId": "s", "requestId": key, "stream": "stdout", "data": "x"}
        await websocket.send(
            json.dumps({"jsonrpc": "2.0", "method": "session.output", "params": output})
        )
        odd = {"sessionId": "s", "requestId": [key], "stream": "stdout", "data": "x"}
        await websocket.send(
            json.dumps({"jsonrpc": "2.0", "method": "session.output", "params": odd})
        )
        await websocket.send(b"\xff\xfe not utf-8")
        await websocket.send(json.dumps({"jsonrpc": "2.0", "id": key, "result": "done"}))

    def explode(method: str, params: dict[str, Any]) -> None:
        raise RuntimeError("a user callback failed")

    connection = Connection(await scripted(script))
    with pytest.raises(RuntimeError, match="callback"):
        await connection.exchange("first", listener=explode)
    # The connection lives on for every other call.
    assert (await connection.exchange("second"))["result"] == "done"
    assert connection.reconnects == 0
    await connection.close()


async def test_refused_key_is_unauthorized(scripted: Callable[[Script], Awaitable[str]]) -> None:
    async def script(websocket: ServerConnection, request: dict[str, Any]) -> None:
        refusal = {"jsonrpc": "2.0", "id": None, "error": rpc_error("unauthorized")}
        await websocket.send(json.dumps(refusal))
        await websocket.close(1008)

    connection = Connection(await scripted(script), api_key="wrong")
    with pytest.raises(errors.Unauthorized):
        await connection.request("session.list", NoParams(), SessionList)
    await connection.close()


async def test_drop_fails_the_call_then_reconnects(
    scripted: Callable[[Script], Awaitable[str]],
) -> None:
    calls: list[str] = []

    async def script(websocket: ServerConnection, request: dict[str, Any]) -> None:
        calls.append(request["method"])
        if len(calls) == 1:
            await websocket.close()  # drops the first call of each kind, once
            return
        if request["method"] == "session.list":
            await websocket.send(
                json.dumps(
                    {"jsonrpc": "2.0", "id": request["id"], "result": {"count": 0, "sessions": []}}
                )
            )
            return
        await websocket.close()

    connection = Connection(await scripted(script))
    # A read is sent again on a new socket by itself …
    listing = await connection.request("session.list", NoParams(), SessionList)
    assert listing.count == 0
    assert connection.reconnects == 1
    # … anything else is the caller's to decide: it may have run.
    with pytest.raises(errors.ConnectionLost) as lost:
        await connection.exchange("session.execute", {"sessionId": "s"})
    assert lost.value.sent
    assert await connection.next_unsolicited(1) is CLOSED
    await connection.close()
    with pytest.raises(errors.ConnectionLost):
        await connection.exchange("session.list")


async def test_unreachable_server() -> None:
    connection = Connection("ws://127.0.0.1:9/ws/jsonrpc", reconnect_attempts=2)
    with pytest.raises(errors.ConnectionLost) as lost:
        await connection.open()
    assert lost.value.sent is False
    assert "after 2 attempts" in str(lost.value)


def test_the_sync_client_refuses_deadlocks_and_use_after_close() -> None:
    with pytest.raises(errors.Unreachable):  # a failed ``with`` ends the client's thread
        CodeBeaker("ws://127.0.0.1:9/ws/jsonrpc", reconnect_attempts=1).__enter__()
    client = CodeBeaker("ws://127.0.0.1:9/ws/jsonrpc", reconnect_attempts=1)

    async def from_a_callback() -> object:  # runs on the client's own thread
        return client.list_sessions()

    with pytest.raises(RuntimeError, match="callbacks"):
        client._portal.run(from_a_callback())
    client.close()
    client.close()
    with pytest.raises(errors.ConnectionLost, match="closed"):
        client.list_sessions()
