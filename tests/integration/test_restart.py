"""Sessions that survive their server: ``kill -9`` and ``CODEBEAKER_SHUTDOWN=keep`` leave
session containers running, and the next server of the same instance adopts them; a
container ends by itself at its lifetime even with no server; what cannot be adopted goes.

Each test starts its own servers of one fixed instance name and cleans up after them,
killed or not, so nothing a killed server left can fail another test.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import aiodocker
import pytest

from codebeaker.constants import (
    AGENT_PATH,
    LABEL_INSTANCE,
    LABEL_KIND,
    LABEL_MANAGED,
    LABEL_SESSION,
)
from codebeaker.sessions.records import FLUSH_SECONDS

from .client import RpcClient
from .conftest import (
    IMAGE_PREFIX,
    ServerProcess,
    container_exists,
    http_get,
    instance_containers,
    remove_instance_containers,
    stop_and_check,
    wait_until,
)

REQUEST_IDS = itertools.count(1_000_000)
NOT_FOUND = (-32001, -32002)

Start = Callable[..., Awaitable[ServerProcess]]


@pytest.fixture
async def servers(docker: aiodocker.Docker, driver: str) -> AsyncIterator[Start]:
    """``await servers(instance, **env)``: a server of that instance (the test's driver).
    Afterwards every one is stopped and every container of their instances removed."""
    started: list[ServerProcess] = []

    async def start(instance: str, **env: str) -> ServerProcess:
        server = ServerProcess({"CODEBEAKER_DRIVER": driver, **env}, instance=instance)
        started.append(server)
        await server.start()
        return server

    try:
        yield start
    finally:
        for server in reversed(started):
            await server.stop(check=False)
        for instance in {server.instance for server in started}:
            await remove_instance_containers(docker, instance)


def new_instance() -> str:
    return f"it-restart-{secrets.token_hex(4)}"


async def kill(server: ServerProcess) -> None:
    """``kill -9``: nothing of the server's shutdown runs."""
    assert server.process is not None
    server.process.kill()
    await asyncio.to_thread(server.process.wait, 10)


async def summary(client: RpcClient, session_id: str) -> dict[str, Any]:
    listed = await client.result("session.list")
    rows = [row for row in listed["sessions"] if row["sessionId"] == session_id]
    assert len(rows) == 1, listed
    row: dict[str, Any] = rows[0]
    return row


async def running(docker: aiodocker.Docker, container_id: str) -> bool:
    info = await docker.containers.get(container_id)
    return bool(info._container["State"]["Running"])


async def processes(docker: aiodocker.Docker, container_id: str) -> list[tuple[str, str]]:
    """(uid, command line) of every process in the container, as root outside the session
    sees them (a command of the session would count as one of its executions)."""
    execution = await docker.containers.container(container_id).exec(
        ["ps", "-eo", "uid=,args="], user="0:0"
    )
    output = b""
    async with execution.start(detach=False) as stream:
        while (message := await stream.read_out()) is not None:
            output += message.data
    rows = [line.strip().split(None, 1) for line in output.decode().splitlines()]
    return [(row[0], row[1]) for row in rows if len(row) == 2 and not row[1].startswith("ps ")]


async def read_text(client: RpcClient, session_id: str, path: str) -> str:
    result = await client.ok(session_id, {"type": "read_file", "path": path})
    return str(result["content"])


async def test_kill_9_mid_conversation_then_the_next_server_adopts_the_session(
    docker: aiodocker.Docker, servers: Start, driver: str
) -> None:
    instance = new_instance()
    first = await servers(instance)
    client = await RpcClient.connect(first.url)
    created = await client.result("session.create", {"language": "python"})
    sid, container_id = created["sessionId"], created["containerId"]
    await client.ok(
        sid, {"type": "write_file", "path": "/workspace/kept.txt", "content": "before the crash"}
    )
    assert (await client.sh(sid, "nohup sleep 999 >/dev/null 2>&1 &"))["success"]
    # a conversation: a streamed cat that echoes what it is sent, never finished
    request_id = next(REQUEST_IDS)
    params = {
        "sessionId": sid,
        "stream": True,
        "command": {"type": "execute_shell", "commandName": "cat", "args": []},
    }
    await client.start("session.execute", params, request_id=request_id)
    await client.result("session.input", {"sessionId": sid, "data": "hello\n"})
    echoed = await client.next_output(request_id)
    assert echoed["data"] == "hello\n", echoed
    before = await summary(client, sid)
    assert before["executionCount"] == 3, before
    await asyncio.sleep(FLUSH_SECONDS + 0.5)  # the batched clocks reach the file
    await kill(first)
    await client.close()
    assert await running(docker, container_id), "the session container died with its server"
    await asyncio.sleep(2)  # time without a server is idle time

    second = await servers(instance)
    client = await RpcClient.connect(second.url)
    try:
        after = await summary(client, sid)
        assert after["containerId"] == container_id
        assert after["executionCount"] == before["executionCount"]
        assert datetime.fromisoformat(after["createdAt"]) == datetime.fromisoformat(
            before["createdAt"]
        )
        # the idle clock went on from the last activity (the input), the server's absence
        # included; the lifetime clock from the creation
        assert after["idleMinutes"] * 60 >= 3.0, after
        assert after["lifetimeMinutes"] >= before["lifetimeMinutes"] + 3.0 / 60, (before, after)

        assert await read_text(client, sid, "/workspace/kept.txt") == "before the crash"
        rows = await processes(docker, container_id)
        assert ("1000", "sleep 999") in rows, rows  # a background process runs on
        assert ("1000", "cat") not in rows, rows  # the cut conversation's process does not
        if driver == "agent":  # one agent: the new one; the old one's leftovers are gone
            agents = [row for row in rows if row[0] == "0" and row[1].endswith(AGENT_PATH)]
            assert len(agents) == 1, rows
        again = await summary(client, sid)
        assert again["executionCount"] == before["executionCount"] + 1, again
        assert (await client.sh(sid, "echo adopted"))["result"]["stdout"] == "adopted\n"
    finally:
        await client.close()
    await stop_and_check(docker, second)  # a default SIGTERM removes adopted sessions too


async def test_sigterm_with_keep_leaves_sessions_for_the_next_server(
    docker: aiodocker.Docker, servers: Start, tmp_path: Path
) -> None:
    """Through tenants: the adopted session is still its owner's, and only its owner's."""
    keys = {"alice": secrets.token_urlsafe(16), "bob": secrets.token_urlsafe(16)}
    keys_file = tmp_path / "keys.json"
    keys_file.write_text(
        json.dumps(
            [
                {"name": name, "keySha256": hashlib.sha256(key.encode()).hexdigest()}
                for name, key in keys.items()
            ]
        )
    )

    async def connect(server: ServerProcess, name: str) -> RpcClient:
        headers = {"Authorization": f"Bearer {keys[name]}"}
        return await RpcClient.connect(server.url, additional_headers=headers)

    instance = new_instance()
    keyed = {"CODEBEAKER_API_KEYS_FILE": str(keys_file)}
    first = await servers(instance, CODEBEAKER_SHUTDOWN="keep", **keyed)
    client = await connect(first, "alice")
    created = await client.result("session.create", {"language": "python", "env": {"K": "v"}})
    sid, container_id = created["sessionId"], created["containerId"]
    await client.ok(sid, {"type": "write_file", "path": "/workspace/a.txt", "content": "kept"})
    await client.close()
    await first.stop()
    assert "kept for adoption" in first.log()
    assert await running(docker, container_id)
    left = [info["Id"] for info in await instance_containers(docker, instance)]
    assert left == [container_id], left  # the pool's containers went

    second = await servers(instance, **keyed)
    client = await connect(second, "alice")
    other = await connect(second, "bob")
    try:
        assert (await summary(client, sid))["containerId"] == container_id
        assert await read_text(client, sid, "/workspace/a.txt") == "kept"
        envelope = await client.sh(sid, 'printf "$K"')  # the session's env came along
        assert envelope["result"]["stdout"] == "v", envelope
        assert (await other.result("session.list"))["count"] == 0
        command = {"type": "read_file", "path": "/workspace/a.txt"}
        params = {"sessionId": sid, "command": command}
        await other.error("session.execute", params, code=-32001)
    finally:
        await client.close()
        await other.close()
    await stop_and_check(docker, second)

    third = await servers(instance, **keyed)  # removed by default: nothing left to adopt
    client = await connect(third, "alice")
    try:
        assert (await client.result("session.list"))["count"] == 0
    finally:
        await client.close()


async def test_a_container_ends_at_its_lifetime_with_no_server(
    docker: aiodocker.Docker, servers: Start
) -> None:
    instance = new_instance()
    first = await servers(
        instance,
        CODEBEAKER_DEFAULT_MAX_LIFETIME_MINUTES="0.1",
        CODEBEAKER_MAX_LIFETIME_MINUTES="0.2",  # the pool's containers: 12 s
    )
    client = await RpcClient.connect(first.url)
    created = await client.result("session.create", {"language": "python"})
    await client.close()
    await kill(first)
    started = time.monotonic()
    assert await running(docker, created["containerId"])

    async def all_gone() -> bool:
        """A create the killed server sent may still complete: such a container never
        started, holds nothing, and is removed by the instance's next start."""
        containers = await instance_containers(docker, instance)
        return all(info["State"] == "created" for info in containers)

    # lifetime + reaper interval + grace (6 + 1 + 10 s, or 12 + 1 + 10 for pooled ones)
    assert await wait_until(all_gone, timeout=60), await instance_containers(docker, instance)
    assert time.monotonic() - started >= 5  # not at once: at the lifetime


async def test_what_cannot_be_adopted_is_removed(docker: aiodocker.Docker, servers: Start) -> None:
    instance = new_instance()
    first = await servers(instance)
    client = await RpcClient.connect(first.url)
    alive = await client.result("session.create", {"language": "python"})
    dead = await client.result("session.create", {"language": "python"})
    await client.close()

    async def pool_full() -> bool:
        _, health = await http_get(first.http_url + "/health")
        return bool(health["pool"]["python"]["ready"] == 2)

    assert await wait_until(pool_full, timeout=60)
    await kill(first)
    sessions = {alive["containerId"], dead["containerId"]}  # taken from the pool, maybe
    pooled = [
        info["Id"]
        for info in await instance_containers(docker, instance, **{LABEL_KIND: "pool"})
        if info["Id"] not in sessions
    ]
    assert pooled, "the first server had a warm pool"
    # one session's container dies with no server; another container of ours has no record
    await docker.containers.container(dead["containerId"]).kill()
    labels = {
        LABEL_MANAGED: "true",
        LABEL_INSTANCE: instance,
        LABEL_KIND: "session",
        LABEL_SESSION: "no-such-record",
    }
    ghost = await docker.containers.run(
        {
            "Image": f"{IMAGE_PREFIX}/python:latest",
            "Cmd": ["sleep", "300"],
            "Labels": labels,
            "HostConfig": {"NetworkMode": "none", "AutoRemove": False},
        }
    )

    second = await servers(instance)
    client = await RpcClient.connect(second.url)
    try:
        assert (await summary(client, alive["sessionId"]))["containerId"] == alive["containerId"]
        listed = await client.result("session.list")
        assert [row["sessionId"] for row in listed["sessions"]] == [alive["sessionId"]]
        response = await client.call(
            "session.execute",
            {
                "sessionId": dead["sessionId"],
                "command": {"type": "execute_shell", "commandName": "true", "args": []},
            },
        )
        assert response["error"]["code"] in NOT_FOUND, response
    finally:
        await client.close()
    assert not await container_exists(docker, ghost.id)
    for container_id in pooled:
        assert not await container_exists(docker, container_id)
    await stop_and_check(docker, second)
