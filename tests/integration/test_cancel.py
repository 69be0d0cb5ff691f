"""``session.cancel`` and ``session.input`` with ``requestId``, through the real server:
running commands killed with their whole tree, queued ones that never start, the next
command running at once, streamed input routed to the call it names, cells interrupted,
the REST form, and the refusals."""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Any

import pytest

from .client import RpcClient
from .conftest import (
    ConnectFactory,
    ServerProcess,
    SessionFactory,
    escaping_tree,
    leftover_user_processes,
)
from .rest import Rest

QUICK = 10.0  # seconds: a cancel (and the reply of what it stopped) comes well within this
TREE = escaping_tree("sleep 1; echo ready; sleep 30")
"""Background children, a new session, a double fork, an emptied environment: the tree a
timeout kills (test_shell.py), this time stopped by a cancel."""

Future = asyncio.Future[dict[str, Any]]


def string_id() -> str:
    return f"cancel-{secrets.token_hex(6)}"


def int_id() -> int:
    """Far above the client's own counter, so it never reuses one."""
    return 10**12 + secrets.randbelow(10**9)


async def start_sh(
    rpc: RpcClient,
    session_id: str,
    script: str,
    request_id: Any,
    *,
    stream: bool = True,
    **fields: Any,
) -> Future:
    """Send ``sh -c script`` (streamed by default) without waiting: its reply's future."""
    command = {"type": "execute_shell", "commandName": "sh", "args": ["-c", script], **fields}
    params = {"sessionId": session_id, "command": command, "stream": stream}
    return await rpc.start("session.execute", params, request_id=request_id)


async def running(rpc: RpcClient, session_id: str, request_id: Any, script: str) -> Future:
    """Start a streamed script that prints ``ready`` first; returns once it did."""
    reply = await start_sh(rpc, session_id, script, request_id)
    while True:
        chunk = await rpc.next_output(request_id, timeout=60)
        if chunk["stream"] == "stdout":
            assert chunk["data"].startswith("ready"), chunk
            return reply


async def started(rpc: RpcClient, session_id: str, request_id: Any, script: str) -> Future:
    """Start a script without streaming, and give it time to leave the queue of an idle
    session (a call cancelled while queued never starts: a different answer)."""
    reply = await start_sh(rpc, session_id, script, request_id, stream=False)
    await asyncio.sleep(1.0)
    assert not reply.done(), reply.result()
    return reply


async def cancel(rpc: RpcClient, session_id: str, request_id: Any = None) -> list[Any]:
    """``session.cancel``; checks the reply's shape and returns its ``cancelled`` list."""
    params: dict[str, Any] = {"sessionId": session_id}
    if request_id is not None:
        params["requestId"] = request_id
    result = await rpc.result("session.cancel", params, timeout=QUICK)
    assert set(result) == {"sessionId", "cancelled"}, result
    assert result["sessionId"] == session_id, result
    cancelled: list[Any] = result["cancelled"]
    return cancelled


async def outcome(reply: Future, timeout: float = QUICK) -> dict[str, Any]:
    """The ``session.execute`` envelope a started call answered with."""
    response = await asyncio.wait_for(reply, timeout)
    assert "result" in response, response
    envelope: dict[str, Any] = response["result"]
    assert set(envelope) == {"success", "result", "error", "durationMs"}, envelope
    return envelope


def assert_killed(envelope: dict[str, Any]) -> dict[str, Any]:
    """A running ``execute_shell`` that a cancel stopped; its result."""
    assert envelope["success"] is False, envelope
    assert envelope["error"].startswith("cancelled:"), envelope
    result: dict[str, Any] = envelope["result"]
    assert result["cancelled"] is True, result
    assert result["exitCode"] == 137, result
    assert result["timedOut"] is False, result
    assert result["truncated"] is False, result
    return result


def assert_never_started(envelope: dict[str, Any]) -> None:
    """A queued command that a cancel stopped before its turn."""
    assert envelope["success"] is False, envelope
    assert envelope["result"] is None, envelope
    assert envelope["error"].startswith("cancelled:"), envelope
    assert "before it started" in envelope["error"], envelope


# --------------------------------------------------------------------------- commands


@pytest.mark.timeout(90)
async def test_cancel_a_running_sleep(rpc: RpcClient, make_session: SessionFactory) -> None:
    sid = (await make_session("python"))["sessionId"]
    rid = int_id()
    reply = await start_sh(rpc, sid, "echo ready; echo err >&2; exec sleep 30", rid)
    seen = {"stdout": "", "stderr": ""}
    while seen != {"stdout": "ready\n", "stderr": "err\n"}:  # both written: it sleeps
        chunk = await rpc.next_output(rid, timeout=60)
        seen[chunk["stream"]] += chunk["data"]
    started = time.monotonic()
    assert await cancel(rpc, sid, rid) == [rid]
    result = assert_killed(await outcome(reply))
    elapsed = time.monotonic() - started
    assert elapsed < 5, f"the cancel and its reply took {elapsed:.1f}s"
    assert result["stdout"] == "ready\n"
    assert result["stderr"] == "err\n"
    assert await leftover_user_processes(rpc, sid) == []
    assert (await rpc.shell(sid, "echo", "alive"))["result"]["stdout"] == "alive\n"


@pytest.mark.timeout(90)
async def test_cancel_kills_the_whole_tree(rpc: RpcClient, make_session: SessionFactory) -> None:
    sid = (await make_session("python"))["sessionId"]
    rid = string_id()
    reply = await running(rpc, sid, rid, TREE)
    assert await cancel(rpc, sid) == [rid]  # no requestId: what runs now
    result = assert_killed(await outcome(reply))
    assert result["stdout"] == "ready\n"
    leftovers = await leftover_user_processes(rpc, sid)
    assert leftovers == [], f"processes survived the cancel: {leftovers}"


@pytest.mark.timeout(90)
async def test_a_non_streamed_command_is_cancelled_too(
    rpc: RpcClient, make_session: SessionFactory
) -> None:
    sid = (await make_session("python"))["sessionId"]
    rid = string_id()
    reply = await started(rpc, sid, rid, "exec sleep 30")
    assert await cancel(rpc, sid, rid) == [rid]
    result = assert_killed(await outcome(reply))
    assert result["stdout"] == ""
    assert await leftover_user_processes(rpc, sid) == []


@pytest.mark.timeout(90)
async def test_the_next_command_runs_at_once(rpc: RpcClient, make_session: SessionFactory) -> None:
    sid = (await make_session("python"))["sessionId"]
    first, second = int_id(), int_id()
    busy = await running(rpc, sid, first, "echo ready; exec sleep 30")
    queued = await start_sh(rpc, sid, "echo next", second, stream=False)
    await asyncio.sleep(0.2)
    assert not queued.done(), "the second command ran beside the first"
    started = time.monotonic()
    assert await cancel(rpc, sid) == [first]  # only the running one
    assert_killed(await outcome(busy))
    envelope = await outcome(queued)
    elapsed = time.monotonic() - started
    assert elapsed < 5, f"the queued command answered {elapsed:.1f}s after the cancel"
    assert envelope["success"] is True, envelope
    assert envelope["result"]["stdout"] == "next\n"


@pytest.mark.timeout(90)
async def test_cancel_a_queued_command_by_its_id(
    rpc: RpcClient, make_session: SessionFactory
) -> None:
    sid = (await make_session("python"))["sessionId"]
    first, second, third = string_id(), string_id(), int_id()
    busy = await running(rpc, sid, first, "echo ready; exec sleep 30")
    never = await start_sh(rpc, sid, "echo ran > never.txt", second, stream=False)
    command = {"type": "write_file", "path": "also-never.txt", "content": "x"}
    params = {"sessionId": sid, "command": command}
    never_file = await rpc.start("session.execute", params, request_id=third)
    await asyncio.sleep(0.2)

    assert await cancel(rpc, sid, second) == [second]
    assert_never_started(await outcome(never))  # answered now, not when its turn came
    assert not busy.done(), "cancelling a queued command stopped the running one"
    assert await cancel(rpc, sid, third) == [third]  # a file command, while queued
    assert_never_started(await outcome(never_file))
    assert await cancel(rpc, sid, second) == []  # already gone

    assert await cancel(rpc, sid, first) == [first]
    assert_killed(await outcome(busy))
    listing = await rpc.execute(sid, {"type": "list_directory", "path": "."})
    names = {entry["name"] for entry in listing["result"]["entries"]}
    assert not names & {"never.txt", "also-never.txt"}, names


async def test_cancel_with_nothing_running(rpc: RpcClient, py_session: str) -> None:
    assert await cancel(rpc, py_session) == []
    assert await cancel(rpc, py_session, "no-such-call") == []
    assert await cancel(rpc, py_session, 123456789) == []
    envelope = await rpc.shell(py_session, "echo", "fine")
    assert envelope["result"]["stdout"] == "fine\n"


@pytest.mark.timeout(90)
async def test_a_finished_call_is_not_cancelled(rpc: RpcClient, py_session: str) -> None:
    rid = string_id()
    reply = await start_sh(rpc, py_session, "echo done", rid, stream=False)
    envelope = await outcome(reply, 60)
    assert envelope["success"] is True, envelope
    assert await cancel(rpc, py_session, rid) == []


@pytest.mark.timeout(90)
async def test_ids_match_by_type(rpc: RpcClient, make_session: SessionFactory) -> None:
    sid = (await make_session("python"))["sessionId"]
    rid = int_id()
    reply = await running(rpc, sid, rid, "echo ready; exec sleep 30")
    assert await cancel(rpc, sid, str(rid)) == []  # "7" is not 7
    await asyncio.sleep(0.2)
    assert not reply.done()
    assert await cancel(rpc, sid, rid) == [rid]
    assert_killed(await outcome(reply))


@pytest.mark.timeout(90)
async def test_another_sessions_call_cannot_be_cancelled(
    rpc: RpcClient, make_session: SessionFactory, connect: ConnectFactory
) -> None:
    mine = (await make_session("python"))["sessionId"]
    theirs = (await make_session("python"))["sessionId"]
    rid = string_id()
    reply = await running(rpc, mine, rid, "echo ready; exec sleep 30")
    other = await connect()  # another client, too: the session id is what matters
    for client in (rpc, other):
        result = await client.result("session.cancel", {"sessionId": theirs, "requestId": rid})
        assert result == {"sessionId": theirs, "cancelled": []}
    await asyncio.sleep(0.3)
    assert not reply.done(), "a cancel through another session stopped the command"
    # any holder of the session id may cancel in it, on any connection
    result = await other.result("session.cancel", {"sessionId": mine, "requestId": rid})
    assert result == {"sessionId": mine, "cancelled": [rid]}
    assert_killed(await outcome(reply))


@pytest.mark.timeout(90)
async def test_cancel_a_streamed_command_reading_stdin(
    rpc: RpcClient, make_session: SessionFactory
) -> None:
    sid = (await make_session("python"))["sessionId"]
    rid = int_id()
    reply = await running(rpc, sid, rid, "echo ready; cat")
    accepted = await rpc.result(
        "session.input", {"sessionId": sid, "requestId": rid, "data": "hello\n"}
    )
    assert accepted == {"sessionId": sid, "bytes": 6, "eof": False}
    echoed = await rpc.next_output(rid)
    assert echoed["data"] == "hello\n", echoed
    assert await cancel(rpc, sid, rid) == [rid]
    result = assert_killed(await outcome(reply))
    assert result["stdout"] == "ready\nhello\n"
    await rpc.error(
        "session.input",
        {"sessionId": sid, "requestId": rid, "data": "late"},
        code=-32007,
        kind="input_closed",
    )
    await rpc.error(
        "session.input", {"sessionId": sid, "data": "late"}, code=-32007, kind="input_closed"
    )
    assert await leftover_user_processes(rpc, sid) == []


# --------------------------------------------------------------------------- input


@pytest.mark.timeout(90)
async def test_input_goes_to_the_call_it_names(
    rpc: RpcClient, make_session: SessionFactory
) -> None:
    sid = (await make_session("python"))["sessionId"]
    first, second = string_id(), int_id()
    one = await running(rpc, sid, first, "echo ready one; cat")
    two = await start_sh(rpc, sid, "echo two; cat", second)  # queued behind the first
    # the second's input waits for it, though the first is the oldest open stdin
    await rpc.result(
        "session.input", {"sessionId": sid, "requestId": second, "data": "to two\n", "eof": True}
    )
    await rpc.result(
        "session.input", {"sessionId": sid, "requestId": first, "data": "to one\n", "eof": True}
    )
    first_result = (await outcome(one, 60))["result"]
    second_result = (await outcome(two, 60))["result"]
    assert first_result["stdout"] == "ready one\nto one\n", first_result
    assert second_result["stdout"] == "two\nto two\n", second_result


@pytest.mark.timeout(90)
async def test_input_to_a_call_that_does_not_read_is_refused(
    rpc: RpcClient, make_session: SessionFactory
) -> None:
    sid = (await make_session("python"))["sessionId"]
    plain, streamed = string_id(), string_id()
    quiet = await started(rpc, sid, plain, "exec sleep 30")
    for request_id in (plain, "no-such-call", 42):  # not streamed; unknown; unknown
        error = await rpc.error(
            "session.input",
            {"sessionId": sid, "requestId": request_id, "data": "x"},
            code=-32007,
            kind="input_closed",
        )
        assert "requestId" in error["message"], error
    assert await cancel(rpc, sid, plain) == [plain]
    assert_killed(await outcome(quiet))

    # one whose stdin was closed with eof no longer takes input either
    reply = await running(rpc, sid, streamed, "echo ready; cat; exec sleep 30")
    await rpc.result(
        "session.input", {"sessionId": sid, "requestId": streamed, "data": "", "eof": True}
    )
    await rpc.error(
        "session.input",
        {"sessionId": sid, "requestId": streamed, "data": "x"},
        code=-32007,
        kind="input_closed",
    )
    assert await cancel(rpc, sid, streamed) == [streamed]
    assert_killed(await outcome(reply))


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("params", "loc"),
    [
        ({"requestId": True}, ["requestId"]),
        ({"requestId": 1.5}, ["requestId"]),
        ({"requestId": {"id": 1}}, ["requestId"]),
        ({"requestId": [1]}, ["requestId"]),
        ({"requestid": 1}, ["requestid"]),
    ],
)
async def test_bad_params_name_the_field(
    rpc: RpcClient, py_session: str, params: dict[str, Any], loc: list[str]
) -> None:
    for method in ("session.cancel", "session.input"):
        error = await rpc.error(
            method, {"sessionId": py_session, **params}, code=-32602, kind="invalid_params"
        )
        assert [item["loc"] for item in error["data"]["errors"]] == [loc], error


async def test_cancel_needs_a_known_session(rpc: RpcClient) -> None:
    error = await rpc.error("session.cancel", {}, code=-32602, kind="invalid_params")
    assert [item["loc"] for item in error["data"]["errors"]] == [["sessionId"]], error
    await rpc.error(
        "session.cancel", {"sessionId": "no-such-session"}, code=-32001, kind="session_not_found"
    )
    await rpc.error("session.cancel", ["no-such-session"], code=-32602, kind="invalid_params")


# --------------------------------------------------------------------------- cells


async def cell_session(rpc: RpcClient, make_session: SessionFactory, driver: str) -> str | None:
    """A python session to run cells in; None under the exec driver, which has no cells to
    cancel (checked: it refuses them)."""
    sid: str = (await make_session("python"))["sessionId"]
    if driver == "agent":
        return sid
    await rpc.error(
        "session.run_code", {"sessionId": sid, "code": "1"}, kind="contexts_unsupported"
    )
    return None


@pytest.mark.timeout(120)
async def test_cancel_cells_running_and_queued(
    rpc: RpcClient, make_session: SessionFactory, driver: str
) -> None:
    sid = await cell_session(rpc, make_session, driver)
    if sid is None:
        return
    first, second = int_id(), string_id()
    code = "import time\nx = 41\nprint('ready', flush=True)\ntime.sleep(30)"
    params = {"sessionId": sid, "code": code, "stream": True, "timeoutSeconds": 60}
    cell = await rpc.start("session.run_code", params, request_id=first)
    assert (await rpc.next_output(first, timeout=60))["data"].startswith("ready")
    queued_params = {"sessionId": sid, "code": "x = 0"}
    queued = await rpc.start("session.run_code", queued_params, request_id=second)
    await asyncio.sleep(0.2)

    assert await cancel(rpc, sid, second) == [second]
    never = (await asyncio.wait_for(queued, QUICK))["result"]
    assert never["status"] == "interrupted", never
    assert never["error"]["name"] == "Cancelled", never
    assert never["executionCount"] == 0, never
    assert not cell.done()

    assert await cancel(rpc, sid) == [first]  # the running cell: interrupted, state kept
    stopped = (await asyncio.wait_for(cell, QUICK))["result"]
    assert stopped["status"] == "interrupted", stopped
    assert stopped["error"]["name"] == "KeyboardInterrupt", stopped
    assert stopped["statePreserved"] is True, stopped
    after = await rpc.result("session.run_code", {"sessionId": sid, "code": "x + 1"})
    assert after["results"][0]["data"]["text/plain"] == "42", after  # x = 0 never ran


@pytest.mark.timeout(120)
async def test_cancel_without_an_id_stops_every_running_call(
    rpc: RpcClient, make_session: SessionFactory, driver: str
) -> None:
    sid = await cell_session(rpc, make_session, driver)
    if sid is None:
        return
    command_id, cell_id, queued_id = string_id(), string_id(), string_id()
    command = await running(rpc, sid, command_id, "echo ready; exec sleep 30")
    code = "import time\nprint('ready', flush=True)\ntime.sleep(30)"
    params = {"sessionId": sid, "code": code, "stream": True}
    cell = await rpc.start("session.run_code", params, request_id=cell_id)
    assert (await rpc.next_output(cell_id, timeout=60))["data"].startswith("ready")
    queued = await start_sh(rpc, sid, "echo after", queued_id, stream=False)

    assert sorted(await cancel(rpc, sid)) == sorted([command_id, cell_id])
    assert_killed(await outcome(command))
    assert (await asyncio.wait_for(cell, QUICK))["result"]["status"] == "interrupted"
    after = await outcome(queued)  # queued, so not stopped: it ran next
    assert after["success"] is True, after
    assert after["result"]["stdout"] == "after\n"


# --------------------------------------------------------------------------- REST


@pytest.mark.timeout(90)
async def test_rest_cancel(
    rpc: RpcClient, make_session: SessionFactory, server_process: ServerProcess
) -> None:
    sid = (await make_session("python"))["sessionId"]
    url = f"/api/v1/sessions/{sid}/cancel"
    rest = await Rest.open(server_process.http_url)
    try:
        assert await rest.json("POST", url) == {"sessionId": sid, "cancelled": []}
        rid = string_id()
        reply = await running(rpc, sid, rid, "echo ready; exec sleep 30")
        cancelled = await rest.json("POST", url, json={"requestId": rid})
        assert cancelled == {"sessionId": sid, "cancelled": [rid]}
        assert_killed(await outcome(reply))

        # a command sent over REST has no id: cancelled without one, listed as null
        body = {"type": "execute_shell", "commandName": "sleep", "args": ["30"]}
        commands = f"/api/v1/sessions/{sid}/commands"
        posted = asyncio.ensure_future(rest.json("POST", commands, json=body))
        await asyncio.sleep(1.0)  # it left the queue of the idle session
        cancelled = await rest.json("POST", url, content=b"")
        assert cancelled == {"sessionId": sid, "cancelled": [None]}
        assert_killed(await asyncio.wait_for(posted, QUICK))

        problem = await rest.problem("POST", url, 422, "invalid_params", json={"requestId": True})
        assert [item["loc"] for item in problem["errors"]] == [["requestId"]], problem
        await rest.problem("POST", url, 400, "parse_error", content=b"{not json")
        await rest.problem(
            "POST", "/api/v1/sessions/no-such-session/cancel", 404, "session_not_found"
        )
    finally:
        await rest.aclose()
