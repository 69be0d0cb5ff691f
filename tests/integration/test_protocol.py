"""JSON-RPC 2.0 framing: errors, notifications, batches, size limit, /health."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from .client import RpcClient
from .conftest import MIB, ConnectFactory, close_quietly, wait_until


async def next_frame(client: RpcClient, timeout: float = 30) -> Any:
    """The next frame, parsed (a reply object, or a list for a batch)."""
    return await client.recv_raw(timeout)


@pytest.mark.parametrize("text", ["{not json", '{"jsonrpc": "2.0", "id": 1, "method": ', "\x00"])
async def test_parse_error(connect: ConnectFactory, text: str) -> None:
    client = await connect()
    await client.send_raw(text)
    reply = await next_frame(client)
    assert isinstance(reply, dict), reply
    assert reply["jsonrpc"] == "2.0"
    assert reply["id"] is None
    assert reply["error"]["code"] == -32700, reply
    # the connection is still usable
    assert "count" in await client.result("session.list")


@pytest.mark.parametrize(
    "request_",
    [
        {"jsonrpc": "2.0", "id": "r1"},
        {"jsonrpc": "1.0", "id": "r1", "method": "session.list"},
        {"id": "r1", "method": "session.list"},
        {"jsonrpc": "2.0", "id": "r1", "method": 42},
        42,
        "session.list",
    ],
)
async def test_invalid_request(connect: ConnectFactory, request_: object) -> None:
    client = await connect()
    await client.send_raw(json.dumps(request_))
    reply = await next_frame(client)
    assert isinstance(reply, dict), reply
    assert reply["error"]["code"] == -32600, reply
    assert reply["id"] in ("r1", None), reply


@pytest.mark.parametrize("request_id", [7, "abc-123"])
async def test_method_not_found(
    rpc: RpcClient, connect: ConnectFactory, request_id: object
) -> None:
    client = await connect()
    await client.send_raw(
        json.dumps({"jsonrpc": "2.0", "id": request_id, "method": "session.nope"})
    )
    reply = await next_frame(client)
    assert reply["id"] == request_id
    assert reply["error"]["code"] == -32601, reply
    await rpc.error("rpc.discover", code=-32601)


@pytest.mark.parametrize("params", [["python"], [1, 2], "python", 5])
async def test_params_must_be_an_object(
    rpc: RpcClient, connect: ConnectFactory, params: object
) -> None:
    client = await connect()
    request = {"jsonrpc": "2.0", "id": 1, "method": "session.create", "params": params}
    await client.send_raw(json.dumps(request))
    reply = await next_frame(client)
    # a list is "invalid params"; a scalar is not even a valid request
    expected = (-32602,) if isinstance(params, list) else (-32600, -32602)
    assert reply["error"]["code"] in expected, reply
    if reply["error"]["code"] == -32602:
        assert reply["error"]["data"]["kind"] == "invalid_params", reply


async def test_notification_gets_no_reply(connect: ConnectFactory) -> None:
    client = await connect()
    await client.notify("session.list")
    await client.notify("no.such.method")
    await client.notify("session.close", {"sessionId": "nope"})
    await client.send_raw(json.dumps({"jsonrpc": "2.0", "method": "session.create", "params": []}))
    listing = await client.call("session.list")
    assert "result" in listing
    await asyncio.sleep(1)
    assert len(client.frames) == 1, client.frames
    assert client.unmatched_count() == 0


@pytest.mark.timeout(60)
async def test_notification_is_executed(rpc: RpcClient, connect: ConnectFactory) -> None:
    client = await connect()
    before = {row["sessionId"] for row in (await rpc.result("session.list"))["sessions"]}
    await client.notify("session.create", {"language": "python"})

    async def created() -> bool:
        rows = (await rpc.result("session.list"))["sessions"]
        return any(row["sessionId"] not in before for row in rows)

    try:
        assert await wait_until(created, timeout=30), "a notification session.create did nothing"
    finally:
        rows = (await rpc.result("session.list"))["sessions"]
        for row in rows:
            if row["sessionId"] not in before and row["language"] == "python":
                await close_quietly(rpc, row["sessionId"])
    assert client.frames == [], client.frames


async def test_batch(connect: ConnectFactory) -> None:
    client = await connect()
    batch = [
        {"jsonrpc": "2.0", "id": "a", "method": "session.list"},
        {"jsonrpc": "2.0", "id": "b", "method": "no.such.method"},
        {"jsonrpc": "2.0", "id": "c", "method": "session.create", "params": {"language": "cobol"}},
    ]
    await client.send_raw(json.dumps(batch))
    reply = await next_frame(client)
    assert isinstance(reply, list), reply
    assert len(reply) == 3
    by_id = {item["id"]: item for item in reply}
    assert set(by_id) == {"a", "b", "c"}
    assert "count" in by_id["a"]["result"]
    assert by_id["b"]["error"]["code"] == -32601
    assert by_id["c"]["error"]["code"] == -32003


async def test_batch_with_notifications_and_invalid_items(connect: ConnectFactory) -> None:
    client = await connect()
    batch = [
        {"jsonrpc": "2.0", "id": 1, "method": "session.list"},
        {"jsonrpc": "2.0", "method": "session.list"},
        42,
        {"jsonrpc": "2.0", "id": 2, "method": "session.close", "params": {"sessionId": "nope"}},
    ]
    await client.send_raw(json.dumps(batch))
    reply = await next_frame(client)
    assert isinstance(reply, list), reply
    assert len(reply) == 3, reply
    by_id = {item["id"]: item for item in reply}
    assert "result" in by_id[1]
    assert by_id[2]["error"]["code"] == -32001
    assert by_id[None]["error"]["code"] == -32600


async def test_all_notification_batch_gets_no_reply(connect: ConnectFactory) -> None:
    client = await connect()
    await client.send_raw(
        json.dumps(
            [{"jsonrpc": "2.0", "method": "session.list"}, {"jsonrpc": "2.0", "method": "x"}]
        )
    )
    listing = await client.call("session.list")
    assert "result" in listing
    await asyncio.sleep(0.5)
    assert len(client.frames) == 1, client.frames


async def test_empty_batch(connect: ConnectFactory) -> None:
    client = await connect()
    await client.send_raw("[]")
    reply = await next_frame(client)
    assert isinstance(reply, dict), reply
    assert reply["error"]["code"] == -32600
    assert reply["id"] is None


async def test_oversized_frame(connect: ConnectFactory, py_session: str) -> None:
    client = await connect()
    content = "x" * (MIB + 100_000)
    request = {
        "jsonrpc": "2.0",
        "id": "big",
        "method": "session.execute",
        "params": {
            "sessionId": py_session,
            "command": {"type": "write_file", "path": "/tmp/too-big.txt", "content": content},
        },
    }
    await client.send_raw(json.dumps(request))
    reply = await next_frame(client)
    assert isinstance(reply, dict), reply
    assert reply["error"]["code"] == -32004, reply
    assert reply["error"]["data"]["kind"] == "limit_exceeded"
    assert reply["id"] in ("big", None)
    # nothing was written, and the connection goes on working
    envelope = await client.execute(py_session, {"type": "read_file", "path": "/tmp/too-big.txt"})
    assert envelope["success"] is False
    assert envelope["error"].startswith("file_not_found:")
    # just under the limit is fine
    ok = "y" * (MIB - 4096)
    written = await client.ok(
        py_session, {"type": "write_file", "path": "/tmp/big-ok.txt", "content": ok}
    )
    assert written["bytes"] == len(ok)
    await client.ok(py_session, {"type": "delete_file", "path": "/tmp/big-ok.txt"})


async def test_errors_carry_kind_and_no_traceback(rpc: RpcClient) -> None:
    responses = [
        await rpc.call("session.create", {"language": "cobol"}),
        await rpc.call("session.create", {"language": "python", "memoryLimitMB": 10**9}),
        await rpc.call("session.close", {"sessionId": "x"}),
        await rpc.call("session.execute", {"sessionId": "x", "command": {"type": "nope"}}),
        await rpc.call("execution.run", {"language": "python"}),
    ]
    for response in responses:
        error = response["error"]
        assert isinstance(error["data"]["kind"], str), error
        text = json.dumps(response)
        assert "Traceback" not in text
        assert 'File "' not in text
