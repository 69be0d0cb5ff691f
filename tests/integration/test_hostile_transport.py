"""Issue 11's transport attacks, against a real server: each ends bounded, while a bystander
session on another connection keeps answering and the server's memory stays small."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from typing import Any

import websockets

from .conftest import MIB, ServerFactory, ServerProcess, http_get
from .hostile import bystander, peak_rss

NULS = "import sys; sys.stdout.write(chr(0) * (1 << 20))"


async def exchange(server: ServerProcess, frame: str, timeout: float = 30) -> tuple[str, float]:
    """Send one raw frame (permessage-deflate on, as an attacker would) and read the reply;
    (reply, seconds)."""
    async with websockets.connect(
        server.url + "/ws/jsonrpc", max_size=None, compression="deflate"
    ) as socket_:
        began = time.perf_counter()
        await socket_.send(frame)
        reply = await asyncio.wait_for(socket_.recv(), timeout)
        assert isinstance(reply, str)
        return reply, time.perf_counter() - began


def request(method: str, params: Any = None, id_: Any = 1) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": id_, "method": method, "params": params or {}}


async def test_a_batch_of_a_million_items_is_one_invalid_request(
    start_server: ServerFactory,
) -> None:
    server = await start_server(CODEBEAKER_MAX_MESSAGE_BYTES=str(4 * MIB))
    frame = "[" + ",".join(["1"] * 1_000_000) + "]"
    async with bystander(server), peak_rss(server):
        reply, seconds = await exchange(server, frame)
    answer = json.loads(reply)
    assert answer["error"]["code"] == -32600, answer
    assert answer["error"]["data"]["limit"] == "batch_items"
    assert "at most 100 requests" in answer["error"]["message"]
    assert seconds < 2, seconds


async def test_a_batch_of_floods_is_bounded_by_the_pending_reply_budget(
    start_server: ServerFactory,
) -> None:
    server = await start_server()
    async with (
        websockets.connect(server.url + "/ws/jsonrpc", max_size=None) as attacker,
        bystander(server),
        peak_rss(server),
    ):
        await attacker.send(json.dumps(request("session.create", {"language": "python"})))
        session_id = json.loads(await attacker.recv())["result"]["sessionId"]
        command = {"type": "execute_shell", "commandName": "python3", "args": ["-c", NULS]}
        params = {"sessionId": session_id, "command": command}
        batch = [request("session.execute", params, id_=n) for n in range(100)]
        await attacker.send(json.dumps(batch))
        reply = await asyncio.wait_for(attacker.recv(), 300)
        assert isinstance(reply, str)
        await attacker.send(json.dumps(request("session.close", {"sessionId": session_id})))
        await attacker.recv()
    items = json.loads(reply)
    assert sorted(item["id"] for item in items) == list(range(100))
    delivered = [item for item in items if "result" in item]
    refused = [item for item in items if "error" in item]
    assert delivered, "some replies fit the budget"
    assert all(len(item["result"]["result"]["stdout"]) == MIB for item in delivered)
    assert refused, "the rest do not"
    assert {item["error"]["data"]["limit"] for item in refused} == {"pending_reply_size"}
    assert len(reply) < 33 * MIB, len(reply)


async def test_echoes_and_error_lists_are_capped_and_always_json(
    start_server: ServerFactory,
) -> None:
    server = await start_server(CODEBEAKER_MAX_MESSAGE_BYTES=str(8 * MIB))
    unknown = {"language": "python", **{f"k{n}": 1 for n in range(300_000)}}
    frames = {
        "keys": json.dumps(request("session.create", unknown)),
        "method": json.dumps(request("x" * MIB)),
        "deep": "[" * 100_000,
        "deep_params": '{"jsonrpc":"2.0","id":1,"method":"session.list","params":' + "[" * 50_000,
        "deep_batch": "[" + "[" * 900 + "]" * 900 + "]",
        "huge_id": '{"jsonrpc":"2.0","id":1e400,"method":"session.list"}',
        "nan_id": '{"jsonrpc":"2.0","id":NaN,"method":"session.list"}',
        # every reply and every budget error repeated the id: 40 of these took 1.2 GB
        "long_id": json.dumps(request("x", id_="i" * (4 * MIB))),
        "long_id_in_batch": json.dumps([request("session.list"), request("x", id_=10**4000)]),
    }
    replies: dict[str, Any] = {}
    async with bystander(server), peak_rss(server):
        for name, frame in frames.items():
            text, _ = await exchange(server, frame)
            assert len(text) < 10_000, (name, len(text))
            replies[name] = json.loads(text)  # strict: NaN or Infinity would fail here
    (error,) = replies["keys"]["error"]["data"]["errors"]
    assert error["loc"] == ["params"]
    assert error["msg"].startswith("params has 300001 members")
    assert replies["method"]["error"]["code"] == -32601
    assert len(replies["method"]["error"]["data"]) <= 65
    for name in ("deep", "deep_params", "huge_id", "nan_id"):
        assert replies[name]["error"]["code"] == -32700, (name, replies[name])
    assert [item["error"]["code"] for item in replies["deep_batch"]] == [-32600]
    for name in ("long_id", "long_id_in_batch"):
        assert replies[name]["id"] is None, name
        assert replies[name]["error"]["code"] == -32600, (name, replies[name])
        assert replies[name]["error"]["data"]["limit"] == "id_length", (name, replies[name])


async def test_half_open_connections_are_capped_and_timed_out(
    start_server: ServerFactory,
) -> None:
    cap, timeout = 20, 3.0
    server = await start_server(
        CODEBEAKER_MAX_CONNECTIONS=str(cap), CODEBEAKER_HANDSHAKE_TIMEOUT_SECONDS=str(timeout)
    )
    sockets: list[socket.socket] = []
    try:
        async with bystander(server), peak_rss(server):
            for _ in range(3 * cap):
                raw = socket.create_connection(("127.0.0.1", server.port))
                raw.settimeout(0)
                sockets.append(raw)
            await asyncio.sleep(1)
            ends = {raw: _closed_with(raw) for raw in sockets}
            refused = [end for end in ends.values() if end is not None]
            # the bystander's connection is one of the cap
            assert len(refused) == 3 * cap - (cap - 1), len(refused)
            assert all(b" 503 " in end for end in refused), refused[:1]
            waiting = [raw for raw, end in ends.items() if end is None]
            await asyncio.sleep(timeout + 1)
            assert all(_closed_with(raw) is not None for raw in waiting)
        status, _ = await http_get(server.http_url + "/health")
        assert status == 200
    finally:
        for raw in sockets:
            raw.close()


def _closed_with(raw: socket.socket) -> bytes | None:
    """What the server sent before closing the socket; None while it is still open."""
    received = b""
    while True:
        try:
            chunk = raw.recv(4096)
        except BlockingIOError:
            return None
        except ConnectionResetError:
            return received
        if not chunk:
            return received
        received += chunk
