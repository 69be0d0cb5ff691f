"""The agent's own promises and the warm pool, against servers started for them.

These pin the driver themselves (the agent is what they test), so they run once, not per
driver.
"""

from __future__ import annotations

import asyncio
import io
import json
import secrets
import tarfile
import time
from collections.abc import AsyncIterator
from typing import Any

import aiodocker
import pytest

from codebeaker.constants import AGENT_PATH, LABEL_KIND

from .client import RpcClient
from .conftest import (
    IMAGE_PREFIX,
    ServerProcess,
    instance_containers,
    leftover_user_processes,
    sandbox_processes,
    stop_and_check,
    wait_until,
)

BROKEN_AGENT = "raise SystemExit('this image cannot host the agent')\n"


async def start(docker: aiodocker.Docker, **env: str) -> ServerProcess:
    server = ServerProcess({"CODEBEAKER_DRIVER": "agent", **env})
    await server.start()
    return server


@pytest.fixture(scope="module")
async def agent_server(docker: aiodocker.Docker) -> AsyncIterator[ServerProcess]:
    server = await start(docker)
    try:
        yield server
    finally:
        await stop_and_check(docker, server)


@pytest.fixture
async def client(agent_server: ServerProcess) -> AsyncIterator[RpcClient]:
    client = await RpcClient.connect(agent_server.url)
    try:
        yield client
    finally:
        await client.close()


async def pool_ids(docker: aiodocker.Docker, instance: str) -> set[str]:
    return {
        info["Id"] for info in await instance_containers(docker, instance, **{LABEL_KIND: "pool"})
    }


async def agent_pid(client: RpcClient, session_id: str) -> int:
    rows = await sandbox_processes(client, session_id)
    pids = [row["pid"] for row in rows if row["uid"] == 0 and row["cmd"].endswith(AGENT_PATH)]
    assert len(pids) == 1, rows
    return int(pids[0])


@pytest.mark.timeout(120)
async def test_killed_agent_fails_the_command_and_the_session_lives_on(
    docker: aiodocker.Docker, client: RpcClient
) -> None:
    created = await client.result("session.create", {"language": "python"})
    sid = created["sessionId"]
    await client.ok(sid, {"type": "write_file", "path": "keep.txt", "content": "kept"})
    pid = await agent_pid(client, sid)

    running = asyncio.ensure_future(client.sh(sid, "echo started; sleep 1000", timeoutSeconds=60))
    await asyncio.sleep(1.0)
    container = docker.containers.container(created["containerId"])
    execution = await container.exec(["kill", "-9", str(pid)], user="0:0")
    await execution.start(detach=True)

    envelope = await asyncio.wait_for(running, 60)
    assert envelope["success"] is False, envelope
    assert envelope["error"].startswith("agent_lost:"), envelope
    # the command's processes went with it, the files did not, and a new agent serves
    assert await leftover_user_processes(client, sid) == []
    result = await client.ok(sid, {"type": "read_file", "path": "keep.txt"})
    assert result["content"] == "kept"
    assert await agent_pid(client, sid) != pid
    assert (await client.shell(sid, "echo", "after"))["result"]["stdout"] == "after\n"
    await client.result("session.close", {"sessionId": sid})


async def test_user_code_cannot_kill_the_agent(client: RpcClient) -> None:
    created = await client.result("session.create", {"language": "python"})
    sid = created["sessionId"]
    pid = await agent_pid(client, sid)
    envelope = await client.sh(sid, f"kill -9 {pid}; kill -9 -1; echo tried")
    assert "Operation not permitted" in envelope["result"]["stderr"], envelope
    assert await agent_pid(client, sid) == pid
    await client.result("session.close", {"sessionId": sid})


@pytest.mark.timeout(120)
async def test_pool_serves_default_sessions_and_refills(
    docker: aiodocker.Docker, client: RpcClient, agent_server: ServerProcess
) -> None:
    instance = agent_server.instance
    assert await wait_until(lambda: _count_is(docker, instance, 2), timeout=60), "pool never filled"
    before = await pool_ids(docker, instance)

    started = time.monotonic()
    created = await client.result("session.create", {"language": "python"})
    took = time.monotonic() - started
    assert created["containerId"] in before, "a default python session takes a pooled container"
    assert took < 2.0, took
    assert (await client.shell(created["sessionId"], "echo", "pooled"))["success"]

    # the pool refills behind it, with new containers
    assert await wait_until(lambda: _count_is(docker, instance, 3), timeout=60)
    after = await pool_ids(docker, instance)
    assert len(after - before) == 1

    # other limits, another language: cold containers of their own
    custom = await client.result("session.create", {"language": "python", "memoryLimitMB": 256})
    assert custom["containerId"] not in after
    node = await client.result("session.create", {"language": "javascript"})
    assert node["containerId"] not in after
    assert (await client.shell(node["sessionId"], "node", "-e", "console.log(1+1)"))["result"][
        "stdout"
    ] == "2\n"

    # execution.run takes one too, and leaves nothing of it behind (removed after the reply)
    ready = await pool_ids(docker, instance) - {created["containerId"]}
    result = await client.result("execution.run", {"language": "python", "code": "print(7)"})
    assert result["stdout"] == "7\n"

    async def one_taken_and_removed() -> bool:
        return bool(ready - await pool_ids(docker, instance))

    assert await wait_until(one_taken_and_removed, timeout=10), (
        "execution.run should have used a pooled container, then removed it"
    )
    for session in (created, custom, node):
        await client.result("session.close", {"sessionId": session["sessionId"]})


async def _count_is(docker: aiodocker.Docker, instance: str, count: int) -> bool:
    """``count`` containers labelled "pool" are running (taken ones keep their label)."""
    return len(await pool_ids(docker, instance)) >= count


@pytest.mark.timeout(150)
async def test_stale_pool_containers_are_removed_at_start_up(docker: aiodocker.Docker) -> None:
    instance = f"it-pool-{secrets.token_hex(4)}"
    first = ServerProcess({"CODEBEAKER_DRIVER": "agent"}, instance=instance)
    await first.start()
    assert await wait_until(lambda: _count_is(docker, instance, 2), timeout=60)
    stale = await pool_ids(docker, instance)
    assert first.process is not None
    first.process.kill()  # no graceful shutdown: the pool is left behind
    first.process.wait()

    second = ServerProcess({"CODEBEAKER_DRIVER": "agent"}, instance=instance)
    try:
        await second.start()
        assert await wait_until(lambda: _count_is(docker, instance, 2), timeout=60)
        assert not stale & await pool_ids(docker, instance)
    finally:
        await stop_and_check(docker, second)
        first.log_path.unlink(missing_ok=True)


@pytest.mark.timeout(150)
async def test_image_without_the_agent_falls_back_to_exec(docker: aiodocker.Docker) -> None:
    """An image the agent cannot run in still serves every command, one exec each."""
    prefix = f"codebeaker-it-noagent-{secrets.token_hex(3)}"
    image = f"{prefix}/python:latest"
    dockerfile = f"FROM {IMAGE_PREFIX}/python:latest\nCOPY agent.py {AGENT_PATH}\n"
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        for name, text in (("Dockerfile", dockerfile), ("agent.py", BROKEN_AGENT)):
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    context.seek(0)
    await docker.images.build(fileobj=context, encoding="application/x-tar", tag=image)
    server = await start(
        docker, CODEBEAKER_IMAGE_PREFIX=prefix, CODEBEAKER_POOL_SIZES=json.dumps({"python": 0})
    )
    try:
        client = await RpcClient.connect(server.url)
        try:
            sessions: list[dict[str, Any]] = [
                await client.result("session.create", {"language": "python"}) for _ in range(2)
            ]
            # once the image is known not to host the agent, its containers lose the caps
            later = await docker.containers.get(sessions[1]["containerId"])
            config = await later.show()
            assert not config["HostConfig"].get("CapAdd"), config["HostConfig"]["CapAdd"]
            assert config["Config"]["User"] == "65534:65534"
            for created in sessions:
                sid = created["sessionId"]
                await client.ok(sid, {"type": "write_file", "path": "a.py", "content": "print(5)"})
                envelope = await client.shell(sid, "python3", "a.py")
                assert envelope["result"]["stdout"] == "5\n", envelope
                await client.result("session.close", {"sessionId": sid})
        finally:
            await client.close()
        assert "cannot host the agent" in server.log()
    finally:
        await stop_and_check(docker, server)
        await docker.images.delete(image, force=True)
