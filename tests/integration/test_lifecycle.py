"""Expiry, containers dying behind the server's back, shutdown and start-up clean-up."""

from __future__ import annotations

import asyncio
import secrets
import signal
import time
from typing import Any

import aiodocker
import pytest
from aiodocker.exceptions import DockerError

from codebeaker.constants import LABEL_INSTANCE, LABEL_MANAGED

from .client import RpcClient
from .conftest import (
    IMAGE_PREFIX,
    ServerFactory,
    SessionFactory,
    container_exists,
    instance_containers,
    wait_until,
)


async def is_listed(rpc: RpcClient, session_id: str) -> bool:
    listing = await rpc.result("session.list")
    return any(row["sessionId"] == session_id for row in listing["sessions"])


async def gone(rpc: RpcClient, docker: aiodocker.Docker, created: dict[str, Any]) -> bool:
    return not await is_listed(rpc, created["sessionId"]) and not await container_exists(
        docker, created["containerId"]
    )


@pytest.mark.slow
@pytest.mark.timeout(90)
async def test_idle_session_expires(
    rpc: RpcClient, docker: aiodocker.Docker, make_session: SessionFactory
) -> None:
    created = await make_session("python", idleTimeoutMinutes=0.05)  # 3 s
    sid = created["sessionId"]

    # activity keeps it alive well past its idle timeout
    until = time.monotonic() + 6
    while True:
        assert (await rpc.shell(sid, "true"))["success"]
        last_activity = time.monotonic()
        if last_activity >= until:
            break
        await asyncio.sleep(0.8)
    assert await is_listed(rpc, sid), "an active session expired"

    # then, idle (session.list is not activity), it is closed and its container removed
    assert await wait_until(lambda: gone(rpc, docker, created), timeout=20), (
        "idle session not closed within 3 s + 15 s"
    )
    assert time.monotonic() - last_activity >= 2.5, "closed before its idle timeout"
    await rpc.error(
        "session.execute",
        {"sessionId": sid, "command": {"type": "list_directory"}},
        code=-32001,
        kind="session_not_found",
    )


@pytest.mark.slow
@pytest.mark.timeout(90)
async def test_max_lifetime_closes_a_busy_session(
    rpc: RpcClient, docker: aiodocker.Docker, make_session: SessionFactory
) -> None:
    started = time.monotonic()
    created = await make_session("python", maxLifetimeMinutes=0.1)  # 6 s
    sid = created["sessionId"]
    failure: dict[str, Any] | None = None
    while time.monotonic() - started < 30:
        response = await rpc.call(
            "session.execute",
            {"sessionId": sid, "command": {"type": "execute_shell", "commandName": "true"}},
            timeout=20,
        )
        if "error" in response:
            failure = response["error"]
            break
        await asyncio.sleep(0.5)
    closed_after = time.monotonic() - started
    assert failure is not None, "the session outlived its max lifetime by far"
    assert failure["code"] in (-32001, -32002), failure
    assert closed_after >= 5.9, f"closed after {closed_after:.1f}s, before its 6 s lifetime"
    assert await wait_until(lambda: gone(rpc, docker, created), timeout=10)


@pytest.mark.timeout(90)
@pytest.mark.parametrize("how", ["removed", "killed", "removed-while-running"])
async def test_container_dies_behind_the_servers_back(
    rpc: RpcClient, docker: aiodocker.Docker, make_session: SessionFactory, how: str
) -> None:
    created = await make_session("python")
    sid = created["sessionId"]
    container = docker.containers.container(created["containerId"])
    execute = {
        "sessionId": sid,
        "command": {"type": "execute_shell", "commandName": "echo", "args": ["x"]},
    }

    if how == "removed-while-running":
        running = await rpc.start(
            "session.execute",
            {
                "sessionId": sid,
                "command": {"type": "execute_shell", "commandName": "sleep", "args": ["60"]},
            },
        )
        await asyncio.sleep(1)
        await container.delete(force=True)
        # the pending call must come back, not hang
        try:
            response = await asyncio.wait_for(running, 20)
        except TimeoutError:
            pytest.fail("an execute whose container was removed did not come back within 20 s")
        if "error" in response:
            assert response["error"]["code"] in (-32001, -32002), response
        else:
            assert response["result"]["success"] is False, response
    elif how == "removed":
        await container.delete(force=True)
    else:
        await container.kill()

    response = await rpc.call("session.execute", execute, timeout=20)
    assert "error" in response, response
    assert response["error"]["code"] in (-32001, -32002), response
    kinds = {-32001: "session_not_found", -32002: "session_terminated"}
    assert response["error"]["data"]["kind"] == kinds[response["error"]["code"]]

    response = await rpc.call("session.execute", execute, timeout=20)
    assert response["error"]["code"] == -32001, response
    assert not await is_listed(rpc, sid)
    assert await wait_until(lambda: gone(rpc, docker, created), timeout=20), (
        "the dead session's container was not removed"
    )


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_sigterm_closes_every_session(
    docker: aiodocker.Docker, start_server: ServerFactory
) -> None:
    server = await start_server()
    client = await RpcClient.connect(server.url)
    try:
        created = await asyncio.gather(
            client.result("session.create", {"language": "python"}),
            client.result("session.create", {"language": "javascript"}),
        )
        ours = {info["Id"] for info in await instance_containers(docker, server.instance)}
        assert {session["containerId"] for session in created} <= ours  # beside the pool
        assert (await client.shell(created[0]["sessionId"], "true"))["success"]

        started = time.monotonic()
        returncode = await server.stop()
        elapsed = time.monotonic() - started
    finally:
        await client.close()
    # uvicorn re-raises the signal after a graceful shutdown, so "killed by SIGTERM" is clean
    assert returncode in (0, -signal.SIGTERM, 128 + signal.SIGTERM), (
        f"server exited with {returncode}:\n{server.log()}"
    )
    assert "Application shutdown complete" in server.log(), server.log()
    assert elapsed < 20
    left = await instance_containers(docker, server.instance)
    assert left == [], f"containers left after shutdown: {[c['Id'][:12] for c in left]}"
    for session in created:
        assert not await container_exists(docker, session["containerId"])


async def _planted_container(
    docker: aiodocker.Docker, instance: str, *, start: bool
) -> aiodocker.containers.DockerContainer:
    container = await docker.containers.create(
        {
            "Image": f"{IMAGE_PREFIX}/python:latest",
            "Entrypoint": ["sleep"],
            "Cmd": ["infinity"],
            "User": "65534:65534",
            "NetworkDisabled": True,
            "Labels": {LABEL_MANAGED: "true", LABEL_INSTANCE: instance},
            "HostConfig": {"NetworkMode": "none", "AutoRemove": False},
        },
        name=f"codebeaker-it-planted-{secrets.token_hex(4)}",
    )
    if start:
        await container.start()
    return container


@pytest.mark.timeout(90)
async def test_startup_cleanup_removes_only_its_own_instance(
    docker: aiodocker.Docker, start_server: ServerFactory
) -> None:
    mine = f"it-{secrets.token_hex(6)}"
    foreign = f"it-{secrets.token_hex(6)}"
    planted = [
        await _planted_container(docker, mine, start=True),
        await _planted_container(docker, mine, start=False),
    ]
    other = await _planted_container(docker, foreign, start=True)
    try:
        await start_server(instance=mine)
        for container in planted:
            assert not await container_exists(docker, container.id), (
                f"leftover {container.id[:12]} of this instance survived start-up"
            )
        assert await container_exists(docker, other.id), (
            "start-up clean-up removed another instance's container"
        )
    finally:
        for container in (*planted, other):
            try:
                await container.delete(force=True)
            except DockerError as exc:
                if exc.status != 404:
                    raise
