"""Many requests on one socket; sessions in parallel; one session's commands in order."""

from __future__ import annotations

import asyncio
import time

import pytest

from .client import RpcClient
from .conftest import ConnectFactory, SessionFactory


@pytest.mark.timeout(60)
async def test_slow_execute_does_not_block_the_socket(rpc: RpcClient, py_session: str) -> None:
    slow = await rpc.start(
        "session.execute",
        {
            "sessionId": py_session,
            "command": {"type": "execute_shell", "commandName": "sleep", "args": ["3"]},
        },
    )
    await asyncio.sleep(0.3)
    started = time.monotonic()
    listing = await rpc.result("session.list", timeout=10)
    elapsed = time.monotonic() - started
    assert elapsed < 1.0, f"session.list waited {elapsed:.2f}s behind a running execute"
    assert not slow.done(), "the sleep finished too early to prove anything"
    row = next(row for row in listing["sessions"] if row["sessionId"] == py_session)
    assert row["state"] == "Active"  # running a command right now
    response = await asyncio.wait_for(slow, 30)
    assert response["result"]["success"] is True, response


@pytest.mark.timeout(60)
async def test_sessions_run_in_parallel(
    rpc: RpcClient, py_session: str, make_session: SessionFactory
) -> None:
    other = (await make_session("python"))["sessionId"]
    started = time.monotonic()
    first, second = await asyncio.gather(
        rpc.shell(py_session, "sleep", "2"), rpc.shell(other, "sleep", "2")
    )
    elapsed = time.monotonic() - started
    assert first["success"], first
    assert second["success"], second
    assert elapsed < 3.5, f"two 2 s commands in two sessions took {elapsed:.1f}s"


@pytest.mark.timeout(60)
async def test_commands_on_one_session_run_in_arrival_order(
    rpc: RpcClient, py_session: str, workdir: str
) -> None:
    path = f"{workdir}/order.txt"
    futures = []
    # a slow command first, so everything behind it has to queue
    futures.append(
        await rpc.start(
            "session.execute",
            {
                "sessionId": py_session,
                "command": {
                    "type": "execute_shell",
                    "commandName": "sh",
                    "args": ["-c", f"sleep 1; echo start >> {path}"],
                },
            },
        )
    )
    for index in range(20):
        futures.append(
            await rpc.start(
                "session.execute",
                {
                    "sessionId": py_session,
                    "command": {
                        "type": "write_file",
                        "path": path,
                        "content": f"{index}\n",
                        "mode": "Append",
                    },
                },
            )
        )
    responses = await asyncio.wait_for(asyncio.gather(*futures), 60)
    assert all(response["result"]["success"] for response in responses), responses
    got = await rpc.ok(py_session, {"type": "read_file", "path": path})
    assert got["content"] == "start\n" + "".join(f"{index}\n" for index in range(20))


@pytest.mark.timeout(60)
async def test_many_calls_in_flight_are_matched_by_id(rpc: RpcClient, py_session: str) -> None:
    futures = [
        await rpc.start(
            "session.execute",
            {
                "sessionId": py_session,
                "command": {"type": "execute_shell", "commandName": "echo", "args": [str(index)]},
            },
        )
        for index in range(10)
    ]
    futures += [await rpc.start("session.list") for _ in range(10)]
    responses = await asyncio.wait_for(asyncio.gather(*futures), 60)
    for index, response in enumerate(responses[:10]):
        assert response["result"]["result"]["stdout"] == f"{index}\n"
    for response in responses[10:]:
        assert "count" in response["result"]


@pytest.mark.timeout(60)
async def test_two_connections_share_one_session_in_order(
    connect: ConnectFactory, py_session: str, workdir: str
) -> None:
    first, second = await connect(), await connect()
    path = f"{workdir}/shared.txt"
    slow = await first.start(
        "session.execute",
        {
            "sessionId": py_session,
            "command": {
                "type": "execute_shell",
                "commandName": "sh",
                "args": ["-c", f"sleep 1; echo first >> {path}"],
            },
        },
    )
    await asyncio.sleep(0.2)
    appended = await second.ok(
        py_session,
        {"type": "write_file", "path": path, "content": "second\n", "mode": "Append"},
    )
    assert appended["bytes"] == 7
    assert (await asyncio.wait_for(slow, 10))["result"]["success"]
    got = await second.ok(py_session, {"type": "read_file", "path": path})
    assert got["content"] == "first\nsecond\n"
