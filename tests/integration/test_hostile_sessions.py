"""Hostile clients of one session (issue 11): replies are never lost, stdin stays bounded.

Each attack runs beside a bystander session on another connection, which must keep
answering in under a second, and the server's memory must stay bounded (``hostile.py``).
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from .client import RpcClient
from .conftest import MIB, ConnectFactory, ServerProcess, SessionFactory
from .hostile import assert_rss_below, bystander

REQUEST_IDS = itertools.count(70_000)
FRAME_DATA = 900_000
"""Characters of input per ``session.input`` frame: under the suite's 1 MiB frame limit."""


async def start_shell(
    client: RpcClient, session_id: str, argv: list[str], *, stream: bool = False, **fields: Any
) -> tuple[int, asyncio.Future[dict[str, Any]]]:
    """Send an ``execute_shell`` without waiting: its request id and the future of its reply."""
    request_id = next(REQUEST_IDS)
    command = {"type": "execute_shell", "commandName": argv[0], "args": argv[1:], **fields}
    params = {"sessionId": session_id, "stream": stream, "command": command}
    return request_id, await client.start("session.execute", params, request_id=request_id)


async def send_input(
    client: RpcClient, session_id: str, request_id: int, size: int
) -> list[dict[str, Any]]:
    """``size`` characters of input for ``request_id`` in frames under the limit, sent all
    at once; every reply."""
    frames = []
    for start in range(0, size, FRAME_DATA):
        data = "x" * min(FRAME_DATA, size - start)
        params = {"sessionId": session_id, "requestId": request_id, "data": data}
        frames.append(await client.start("session.input", params))
    return list(await asyncio.wait_for(asyncio.gather(*frames), 120))


async def test_input_flood_loses_no_reply_and_overlaps_no_command(
    server_process: ServerProcess, connect: ConnectFactory, make_session: SessionFactory
) -> None:
    """A streamed ``true`` queued behind ``sleep 1`` gets 8 MB of input; it ends while its
    input is still being written. The next commands must each get their reply, in turn:
    the one after it times out (and its kill must not reach the one after that)."""
    async with bystander(server_process):
        client = await connect()
        session_id = (await make_session("python", client=client))["sessionId"]
        _, sleeping = await start_shell(client, session_id, ["sleep", "1"])
        streamed, true = await start_shell(client, session_id, ["true"], stream=True)
        inputs = asyncio.ensure_future(send_input(client, session_id, streamed, 8 * MIB))
        await asyncio.sleep(0.5)  # the input is parked behind `sleep 1`
        _, lost = await start_shell(client, session_id, ["sleep", "30"], timeoutSeconds=2)
        _, last = await start_shell(client, session_id, ["sh", "-c", "sleep 3; echo alive"])
        replies = await asyncio.wait_for(asyncio.gather(sleeping, true, lost, last), 60)
        for reply in await inputs:  # each answered: taken, or refused once `true` ended
            assert "result" in reply or reply["error"]["data"]["kind"] == "input_closed", reply
        first, second, third, fourth = (reply["result"] for reply in replies)
        assert first["success"], first
        assert second["success"], second
        assert third["result"]["timedOut"], third
        assert fourth["success"], fourth
        assert fourth["result"]["stdout"] == "alive\n", fourth
        assert_rss_below(server_process)
