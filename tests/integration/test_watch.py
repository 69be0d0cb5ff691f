"""``session.watch``: another connection follows a session read-only — every streamed
command's output, an event as each command starts and ends, and the end of the session."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from .client import RpcClient
from .conftest import ConnectFactory, SessionFactory

Events = list[dict[str, Any]]


def notifications(client: RpcClient, method: str) -> list[dict[str, Any]]:
    found = []
    for frame in client.frames:
        message = json.loads(frame)
        if isinstance(message, dict) and message.get("method") == method:
            found.append(message["params"])
    return found


async def until_events(client: RpcClient, count: int, timeout: float = 30) -> Events:
    async def enough() -> Events:
        while len(events := notifications(client, "session.event")) < count:
            await asyncio.sleep(0.05)
        return events

    return await asyncio.wait_for(enough(), timeout)


async def test_watcher_sees_commands_output_and_the_close(
    rpc: RpcClient, connect: ConnectFactory, make_session: SessionFactory
) -> None:
    session = await make_session("python")
    session_id = session["sessionId"]
    watcher = await connect()
    assert await watcher.result("session.watch", {"sessionId": session_id}) == {
        "sessionId": session_id,
        "watching": True,
    }

    streamed = {
        "sessionId": session_id,
        "stream": True,
        "command": {
            "type": "execute_shell",
            "commandName": "python3",
            "args": ["-c", "import sys; print('out'); print('err', file=sys.stderr); sys.exit(3)"],
        },
    }
    reply = await rpc.call("session.execute", streamed)
    request_id = reply["id"]
    await rpc.execute(session_id, {"type": "write_file", "path": "a.txt", "content": "x"})

    events = await until_events(watcher, 4)
    assert [event["event"] for event in events] == [
        "command_started",
        "command_finished",
        "command_started",
        "command_finished",
    ]
    started, finished, written, _ = events
    assert started["argv"][0] == "python3"
    assert started["command"] == "execute_shell"
    assert started["requestId"] == request_id
    assert finished["exitCode"] == 3
    assert finished["success"] is False
    assert finished["durationMs"] >= 0
    assert written["path"] == "a.txt"
    assert written["command"] == "write_file"

    outputs = notifications(watcher, "session.output")
    text = {
        stream: "".join(o["data"] for o in outputs if o["stream"] == stream)
        for stream in ("stdout", "stderr")
    }
    assert text == {"stdout": "out\n", "stderr": "err\n"}
    assert all(o["requestId"] == request_id and o["sessionId"] == session_id for o in outputs)
    # the watcher heard the output before the command's end
    frames = [json.loads(frame) for frame in watcher.frames]
    methods = [frame.get("method") for frame in frames if "method" in frame]
    assert methods.index("session.output") < methods.index("session.event", 1)

    await rpc.result("session.close", {"sessionId": session_id})
    closed = (await until_events(watcher, 5))[4]
    assert closed == {
        "sessionId": session_id,
        "event": "session_closed",
        "reason": "closed by client",
    }


async def watched(connect: ConnectFactory, make_session: SessionFactory) -> tuple[str, RpcClient]:
    """A new session, and a second connection watching it."""
    session_id: str = (await make_session("python"))["sessionId"]
    watcher = await connect()
    await watcher.result("session.watch", {"sessionId": session_id})
    return session_id, watcher


async def test_unwatch_and_bad_watches(
    rpc: RpcClient, connect: ConnectFactory, make_session: SessionFactory
) -> None:
    session_id, watcher = await watched(connect, make_session)
    await watcher.result("session.watch", {"sessionId": session_id})  # twice: one watch
    await rpc.shell(session_id, "true")
    await until_events(watcher, 2)
    assert await watcher.result("session.unwatch", {"sessionId": session_id}) == {
        "sessionId": session_id,
        "watching": False,
    }
    await rpc.shell(session_id, "true")
    await asyncio.sleep(0.5)
    assert len(notifications(watcher, "session.event")) == 2  # nothing after the unwatch

    await watcher.error("session.watch", {"sessionId": "nope"}, kind="session_not_found")
    await watcher.error("session.watch", {}, kind="invalid_params")
    await watcher.error("session.unwatch", {"sessionId": "nope"}, kind="session_not_found")


async def test_a_closed_watcher_is_forgotten(
    rpc: RpcClient, connect: ConnectFactory, make_session: SessionFactory
) -> None:
    session_id, watcher = await watched(connect, make_session)
    await watcher.close()
    # the session goes on serving its owner; nothing is sent to the closed watcher
    envelope = await rpc.shell(session_id, "echo", "still")
    assert envelope["result"]["stdout"] == "still\n"
