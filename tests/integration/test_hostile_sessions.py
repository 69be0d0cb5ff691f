"""Hostile clients of one session (issue 11): replies are never lost, stdin stays bounded.

Each attack runs beside a bystander session on another connection, which must keep
answering in under a second, and the server's memory must stay bounded (``hostile.py``).
"""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path
from typing import Any

import aiodocker

from codebeaker.constants import AGENT_PATH

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


async def test_parked_input_is_capped_per_session(
    server_process: ServerProcess, connect: ConnectFactory, make_session: SessionFactory
) -> None:
    """30 streamed commands queued behind a sleeper, each sent almost 10 MiB of input
    (under the per-command cap): the session holds no more than 16 MiB of it in all."""
    async with bystander(server_process):
        client = await connect()
        session_id = (await make_session("python", client=client))["sessionId"]
        _, sleeper = await start_shell(client, session_id, ["sleep", "60"], timeoutSeconds=60)
        queued = [await start_shell(client, session_id, ["true"], stream=True) for _ in range(30)]
        taken, refused = 0, []
        for request_id, _ in queued:
            for answer in await send_input(client, session_id, request_id, 11 * FRAME_DATA):
                if "result" in answer:
                    taken += FRAME_DATA
                else:
                    refused.append(answer["error"])
        assert taken <= 16 * MIB, taken
        assert len(refused) == 30 * 11 - taken // FRAME_DATA, refused[:1]
        assert {error["data"]["kind"] for error in refused} == {"limit_exceeded"}, refused[0]
        assert {error["data"]["limit"] for error in refused} == {"parked_input"}, refused[0]
        assert_rss_below(server_process)
        await client.result("session.cancel", {"sessionId": session_id})
        assert (await asyncio.wait_for(sleeper, 30))["result"]["result"]["cancelled"]
        for _, reply in queued:  # each queued command ran, its input dropped with it
            assert (await asyncio.wait_for(reply, 60))["result"]["success"]


AGENT_PEAK = """
import os
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        cmdline = open(f"/proc/{pid}/cmdline", "rb").read()
        status = open(f"/proc/{pid}/status").read()
    except OSError:
        continue
    if cmdline.rstrip(b"\\0").endswith(b"agent.py"):
        print(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM")))
"""


async def test_input_to_a_program_that_never_reads_is_bounded(
    server_process: ServerProcess,
    connect: ConnectFactory,
    make_session: SessionFactory,
    driver: str,
) -> None:
    """A streamed ``sleep`` never reads its stdin: once the sandbox holds its window and the
    server its cap, ``session.input`` is refused (``stdin``), and the agent stays small."""
    async with bystander(server_process):
        client = await connect()
        session = await make_session("python", client=client, memoryLimitMb=128)
        session_id = session["sessionId"]
        request_id, sleeper = await start_shell(
            client, session_id, ["sleep", "120"], stream=True, timeoutSeconds=120
        )
        taken, refusal = 0, None
        while refusal is None and taken < 60 * MIB:
            params = {"sessionId": session_id, "requestId": request_id, "data": "y" * FRAME_DATA}
            reply = await client.call("session.input", params)
            if "error" in reply:
                refusal = reply["error"]
            else:
                taken += FRAME_DATA
        assert refusal is not None, f"{taken} bytes taken, none refused"
        assert refusal["data"] == {"kind": "limit_exceeded", "limit": "stdin"}, refusal
        assert taken <= 12 * MIB, taken  # the server's 10 MiB, the agent's 1 MiB window
        assert_rss_below(server_process)
        await client.result("session.cancel", {"sessionId": session_id})
        assert (await asyncio.wait_for(sleeper, 30))["result"]["result"]["cancelled"]
        probe = await client.shell(session_id, "python3", "-c", AGENT_PEAK)
        if driver == "agent":
            peak_kib = int(probe["result"]["stdout"])
            assert peak_kib < 40 * 1024, f"the agent peaked at {peak_kib} KiB"


async def agent_fds(docker: aiodocker.Docker, container_id: str) -> int:
    """How many descriptors the container's agent holds, read from the host's /proc (the
    suite runs as root beside the engine): inside, neither the sandbox user nor a root
    exec, which has no capabilities, may list a process holding CAP_SETUID."""
    full_id = (await docker.containers.get(container_id)).id
    counts = []
    for entry in Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes()
            in_container = full_id in (entry / "cgroup").read_text()
            if in_container and cmdline.rstrip(b"\0").endswith(AGENT_PATH.encode()):
                counts.append(len(list((entry / "fd").iterdir())))
        except OSError:  # not a process, or it ended meanwhile
            continue
    assert len(counts) == 1, f"{len(counts)} agents in {container_id[:12]}"
    return counts[0]


async def test_failed_spawns_leak_no_descriptors(
    docker: aiodocker.Docker,
    server_process: ServerProcess,
    connect: ConnectFactory,
    make_session: SessionFactory,
    driver: str,
) -> None:
    """Every way a command can fail to start, many times: each answers with its kind, and
    the agent holds no more descriptors afterwards than before."""
    async with bystander(server_process):
        client = await connect()
        session = await make_session("python", client=client)
        session_id = session["sessionId"]
        junk = {"type": "write_file", "path": "/workspace/junk", "content": "\x01\x02junk"}
        await client.ok(session_id, junk)
        await client.ok(
            session_id,
            {"type": "execute_shell", "commandName": "chmod", "args": ["+x", "/workspace/junk"]},
        )
        before = await agent_fds(docker, session["containerId"]) if driver == "agent" else 0
        failures = {
            "file_not_found": {"commandName": "true", "workingDirectory": "/workspace/nowhere"},
            "command_not_found": {"commandName": "no-such-command"},
            "permission_denied": {"commandName": "/etc/passwd"},
        }
        if driver == "agent":  # an exec format error (runc reports it as an exit code 1)
            failures["start_failed"] = {"commandName": "/workspace/junk"}
        for _ in range(25):
            for kind, fields in failures.items():
                await client.failed(session_id, {"type": "execute_shell", **fields}, kind)
        assert (await client.shell(session_id, "echo", "still fine"))["success"]
        if driver == "agent":
            assert await agent_fds(docker, session["containerId"]) == before
        assert_rss_below(server_process)


async def test_flow_control_loses_no_byte_of_a_program_that_reads(
    server_process: ServerProcess, connect: ConnectFactory, make_session: SessionFactory
) -> None:
    """The window is handed back as the program reads: more input than the agent's window
    and the server's cap together reaches it whole, after the stdin sent with the call."""
    client = await connect()
    session_id = (await make_session("python", client=client))["sessionId"]
    request_id, counting = await start_shell(
        client, session_id, ["wc", "-c"], stream=True, stdin="s" * FRAME_DATA
    )
    for _ in range(14):
        params = {"sessionId": session_id, "requestId": request_id, "data": "z" * FRAME_DATA}
        await client.result("session.input", params)
    await client.result("session.input", {"sessionId": session_id, "eof": True})
    result = (await asyncio.wait_for(counting, 60))["result"]
    assert result["success"], result
    assert result["result"]["stdout"].strip() == str(15 * FRAME_DATA), result
