"""session.execute as a whole: the envelope, aliases, validation, the spec's example, state."""

from __future__ import annotations

import json
from typing import Any

import pytest

from .client import RpcClient
from .conftest import ConnectFactory, SessionFactory, close_quietly
from .test_sessions import assert_invalid_params


async def test_wscat_example_verbatim(connect: ConnectFactory, rpc: RpcClient) -> None:
    """The example of the spec, frame for frame."""
    client = await connect()
    await client.send_raw(
        '{"jsonrpc":"2.0","id":1,"method":"session.create","params":{"language":"python"}}'
    )
    reply = await client.recv_raw(90)
    assert reply["jsonrpc"] == "2.0"
    assert reply["id"] == 1
    session_id = reply["result"]["sessionId"]
    try:
        assert reply["result"]["state"] == "Active"
        write = {
            "jsonrpc": "2.0",
            "id": 2,
            "method": "session.execute",
            "params": {
                "sessionId": session_id,
                "command": {"type": "write_file", "path": "hello.py", "content": "print(6*7)"},
            },
        }
        run = {
            "jsonrpc": "2.0",
            "id": 3,
            "method": "session.execute",
            "params": {
                "sessionId": session_id,
                "command": {
                    "type": "execute_shell",
                    "commandName": "python3",
                    "args": ["hello.py"],
                },
            },
        }
        await client.send_raw(json.dumps(write))
        await client.send_raw(json.dumps(run))
        replies = {}
        for _ in range(2):
            frame = await client.recv_raw(60)
            replies[frame["id"]] = frame
        assert replies[2]["result"]["success"] is True, replies[2]
        assert replies[2]["result"]["result"] == {"path": "/workspace/hello.py", "bytes": 10}
        result = replies[3]["result"]
        assert result["success"] is True, result
        assert result["error"] is None
        assert isinstance(result["durationMs"], int)
        assert result["result"] == {
            "stdout": "42\n",
            "stderr": "",
            "exitCode": 0,
            "timedOut": False,
            "truncated": False,
        }
    finally:
        await close_quietly(rpc, session_id)


async def test_type_may_come_last(rpc: RpcClient, workdir: str, py_session: str) -> None:
    command = {"path": f"{workdir}/last.txt", "content": "x", "type": "write_file"}
    assert list(json.loads(json.dumps(command)))[-1] == "type"
    result = await rpc.ok(py_session, command)
    assert result == {"path": f"{workdir}/last.txt", "bytes": 1}
    shell = {"args": ["-n", "hi"], "commandName": "echo", "type": "execute_shell"}
    assert (await rpc.ok(py_session, shell))["stdout"] == "hi"


async def test_aliases(rpc: RpcClient, workdir: str, py_session: str) -> None:
    made = await rpc.ok(py_session, {"type": "create_dir", "path": f"{workdir}/aliased/deep"})
    assert made == {"path": f"{workdir}/aliased/deep"}
    await rpc.ok(
        py_session, {"type": "write_file", "path": f"{workdir}/aliased/f.txt", "content": "1"}
    )
    listing = await rpc.ok(py_session, {"type": "list_files", "path": f"{workdir}/aliased"})
    assert [entry["name"] for entry in listing["entries"]] == ["deep", "f.txt"]
    shell = await rpc.ok(
        py_session,
        {
            "type": "shell",
            "command": "sh",
            "args": ["-c", "echo $((6*7))"],
            "workingDirectory": workdir,
        },
    )
    assert shell["stdout"] == "42\n"
    assert shell["exitCode"] == 0


@pytest.mark.parametrize(
    ("command", "names"),
    [
        ({"type": "launch_missiles"}, ("command",)),
        ({"path": "x"}, ("command", "type")),
        ({"type": "read_file", "path": "x", "bogus": 1}, ("bogus",)),
        ({"type": "write_file", "path": "x"}, ("content",)),
        ({"type": "write_file", "path": "x", "content": "y", "mode": "Truncate"}, ("mode",)),
        ({"type": "write_file", "path": "x", "content": "y", "encoding": "latin1"}, ("encoding",)),
        ({"type": "read_file"}, ("path",)),
        ({"type": "read_file", "path": "x", "maxBytes": -5}, ("maxBytes", "max_bytes")),
        ({"type": "execute_shell"}, ("commandName", "command_name", "command")),
        ({"type": "execute_shell", "commandName": "ls", "args": "-la"}, ("args",)),
        ({"type": "execute_shell", "commandName": "ls", "args": [1, 2]}, ("args",)),
        ({"type": "execute_shell", "commandName": "env", "env": {"A": 1}}, ("env",)),
        (
            {"type": "execute_shell", "commandName": "ls", "timeoutSeconds": -1},
            ("timeoutSeconds", "timeout_seconds"),
        ),
        ({"type": "copy_file", "source": "a"}, ("destination",)),
        ({"type": "delete_file", "path": "a", "recursive": "very"}, ("recursive",)),
    ],
)
async def test_bad_commands_are_invalid_params(
    rpc: RpcClient, py_session: str, command: dict[str, Any], names: tuple[str, ...]
) -> None:
    error = await rpc.error("session.execute", {"sessionId": py_session, "command": command})
    assert_invalid_params(error, *names)


@pytest.mark.parametrize("command", [None, "ls -la", ["ls"], 42])
async def test_command_must_be_an_object(rpc: RpcClient, py_session: str, command: Any) -> None:
    error = await rpc.error("session.execute", {"sessionId": py_session, "command": command})
    assert_invalid_params(error, "command")


async def test_multi_turn_state_persists(rpc: RpcClient, make_session: SessionFactory) -> None:
    created = await make_session("python")
    sid = created["sessionId"]
    script = (
        "import pathlib\n"
        "p = pathlib.Path('counter.txt')\n"
        "n = int(p.read_text()) if p.exists() else 0\n"
        "p.write_text(str(n + 1))\n"
        "print('count', n + 1)\n"
    )
    await rpc.ok(sid, {"type": "write_file", "path": "count.py", "content": script})
    first = await rpc.ok(
        sid, {"type": "execute_shell", "commandName": "python3", "args": ["count.py"]}
    )
    assert first["stdout"] == "count 1\n"
    second = await rpc.ok(
        sid, {"type": "execute_shell", "commandName": "python3", "args": ["count.py"]}
    )
    assert second["stdout"] == "count 2\n"
    read = await rpc.ok(sid, {"type": "read_file", "path": "counter.txt"})
    assert read["content"] == "2"

    # modify the program and run it again: the new version sees the old state
    await rpc.ok(
        sid,
        {
            "type": "write_file",
            "path": "count.py",
            "content": script.replace("n + 1", "n * 10"),
        },
    )
    third = await rpc.ok(
        sid, {"type": "execute_shell", "commandName": "python3", "args": ["count.py"]}
    )
    assert third["stdout"] == "count 20\n"

    # files under /tmp persist between commands too, and so does a shell-made file
    await rpc.ok(
        sid,
        {"type": "execute_shell", "commandName": "sh", "args": ["-c", "echo kept > /tmp/state"]},
    )
    tmp = await rpc.ok(sid, {"type": "read_file", "path": "/tmp/state"})
    assert tmp["content"] == "kept\n"
    cat = await rpc.ok(
        sid, {"type": "execute_shell", "commandName": "cat", "args": ["/tmp/state", "counter.txt"]}
    )
    assert cat["stdout"] == "kept\n20"

    # a directory made by one command is the working directory of the next
    await rpc.ok(sid, {"type": "create_directory", "path": "proj/src"})
    pwd = await rpc.ok(
        sid, {"type": "execute_shell", "commandName": "pwd", "workingDirectory": "proj/src"}
    )
    assert pwd["stdout"] == "/workspace/proj/src\n"


@pytest.mark.parametrize(
    ("command", "field"),
    [
        ({"type": "execute_shell", "commandName": "echo", "args": ["\ud800"]}, "args"),
        ({"type": "execute_shell", "commandName": "env", "env": {"A": "\udfff"}}, "env"),
        ({"type": "execute_shell", "commandName": "env", "env": {"\ud800": "x"}}, "env"),
        ({"type": "execute_shell", "commandName": "cat", "stdin": "a\ud800"}, "stdin"),
        ({"type": "execute_shell", "commandName": "\ud800"}, "commandName"),
        ({"type": "read_file", "path": "\ud800.txt"}, "path"),
    ],
)
async def test_lone_surrogates_are_invalid_params(
    rpc: RpcClient, py_session: str, command: dict[str, Any], field: str
) -> None:
    """JSON can carry them, no process or path can take them: named, refused, and the
    session unharmed (they used to leak two pipes in the agent per call)."""
    for _ in range(20):
        error = await rpc.error(
            "session.execute", {"sessionId": py_session, "command": command}, code=-32602
        )
        assert field in error["data"]["errors"][0]["loc"], error
    assert (await rpc.sh(py_session, "echo fine"))["result"]["stdout"] == "fine\n"
