"""A server with CODEBEAKER_API_KEY: the key as a bearer header or ?apiKey=, nothing else."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiodocker
import pytest

from .client import CLOSED, RpcClient
from .conftest import ConnectFactory, ServerProcess, stop_and_check

API_KEY = "secret"


@pytest.fixture(scope="module")
async def guarded(docker: aiodocker.Docker) -> AsyncIterator[ServerProcess]:
    server = ServerProcess({"CODEBEAKER_API_KEY": API_KEY})
    try:
        await server.start()
        yield server
    finally:
        await stop_and_check(docker, server)


async def assert_refused(client: RpcClient) -> None:
    frame = await client.recv_raw(10)
    assert isinstance(frame, dict), frame
    assert frame["jsonrpc"] == "2.0"
    assert frame["error"]["code"] == -32006, frame
    assert frame["error"]["data"]["kind"] == "unauthorized", frame
    assert API_KEY not in frame["error"]["message"]
    await client.wait_closed(10)
    assert await client.recv_raw(1) is CLOSED


@pytest.mark.parametrize(
    ("headers", "query"),
    [
        (None, ""),
        ({"Authorization": "Bearer wrong"}, ""),
        ({"Authorization": "Basic c2VjcmV0"}, ""),
        (None, "?apiKey=wrong"),
        (None, "?apiKey="),
    ],
)
async def test_refused_without_the_key(
    guarded: ServerProcess, connect: ConnectFactory, headers: dict[str, str] | None, query: str
) -> None:
    client = await connect(guarded.url, path="/ws/jsonrpc" + query, additional_headers=headers)
    await assert_refused(client)


async def test_bearer_header(guarded: ServerProcess, connect: ConnectFactory) -> None:
    client = await connect(guarded.url, additional_headers={"Authorization": f"Bearer {API_KEY}"})
    listing = await client.result("session.list")
    assert listing == {"count": 0, "sessions": []}


async def test_query_parameter(guarded: ServerProcess, connect: ConnectFactory) -> None:
    client = await connect(guarded.url, path=f"/ws/jsonrpc?apiKey={API_KEY}")
    created = await client.result("session.create", {"language": "python"})
    try:
        envelope = await client.shell(created["sessionId"], "echo", "authorized")
        assert envelope["result"]["stdout"] == "authorized\n"
    finally:
        await client.result("session.close", {"sessionId": created["sessionId"]})
