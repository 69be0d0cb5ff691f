"""Issue 11's attacks through values (its items 3, 6 and 11), each against a fresh server
while a bystander keeps being served and the server's memory stays bounded."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import aiodocker

from codebeaker.constants import LABEL_KIND

from .client import RpcClient
from .conftest import ServerFactory, ServerProcess, http_get, instance_containers
from .hostile import assert_rss_below, bystander

SURROGATE_CALLS = 400
"""The agent used to leak two pipes per call: ≈ 340 calls exhausted a session's descriptors."""


async def test_a_tiny_cpu_limit_never_means_no_limit(
    start_server: ServerFactory, docker: aiodocker.Docker
) -> None:
    server = await start_server()
    client = await RpcClient.connect(server.url)
    try:
        async with bystander(server):
            for tiny in (1e-10, 0.001, 0.0099):
                error = await client.error(
                    "session.create", {"language": "python", "cpuLimit": tiny}, code=-32602
                )
                assert error["data"]["errors"][0]["loc"][-1] == "cpuLimit", error
            smallest = await client.result(
                "session.create", {"language": "python", "cpuLimit": 0.01}
            )
            info = await docker.containers.container(smallest["containerId"]).show()
            assert info["HostConfig"]["NanoCpus"] == 10_000_000  # 1 % of a CPU, never 0
            await client.result("session.close", {"sessionId": smallest["sessionId"]})
        assert_rss_below(server)
    finally:
        await client.close()


async def test_lone_surrogates_never_reach_a_process(start_server: ServerFactory) -> None:
    server = await start_server()
    client = await RpcClient.connect(server.url)
    try:
        session = (await client.result("session.create", {"language": "python"}))["sessionId"]
        poisoned = [
            {"type": "execute_shell", "commandName": "env", "env": {"A": "\ud800"}},
            {"type": "execute_shell", "commandName": "echo", "args": ["\ud800"]},
        ]
        async with bystander(server):
            for call in range(SURROGATE_CALLS):
                command = poisoned[call % 2]
                error = await client.error(
                    "session.execute", {"sessionId": session, "command": command}, code=-32602
                )
                assert error["data"]["kind"] == "invalid_params", error
            # the session's descriptors are intact: a command that opens many still runs
            opened = await client.sh(
                session, "python3 -c 'fs=[open(\"/dev/null\") for _ in range(500)]; print(1)'"
            )
            assert opened["result"]["stdout"] == "1\n", opened
        assert_rss_below(server)
    finally:
        await client.close()


async def test_pool_sizes_by_alias_fill_the_pool_sessions_use(
    start_server: ServerFactory, docker: aiodocker.Docker
) -> None:
    """``{"py": 1}`` used to warm a container no session ever took."""
    server = await start_server(CODEBEAKER_POOL_SIZES='{"py": 1}')
    deadline = asyncio.get_running_loop().time() + 60
    while True:
        _, health = await http_get(server.http_url + "/health")
        if health["pool"]["python"]["ready"] == 1:
            break
        assert asyncio.get_running_loop().time() < deadline, health
        await asyncio.sleep(0.1)
    warm = {
        info["Id"]
        for info in await instance_containers(docker, server.instance, **{LABEL_KIND: "pool"})
    }
    assert len(warm) == 1, warm
    client = await RpcClient.connect(server.url)
    try:
        created = await client.result("session.create", {"language": "py"})
        assert created["containerId"] in warm  # the warm one, not a cold start
        await client.result("session.close", {"sessionId": created["sessionId"]})
    finally:
        await client.close()


def test_an_unknown_pool_language_is_refused_at_start_up() -> None:
    """It used to kill the pool filler silently, later; now the server does not start."""
    env = ServerProcess({"CODEBEAKER_POOL_SIZES": '{"ruby": 1}'}).environment()
    argv = [sys.executable, "-m", "codebeaker", "serve", "--port", "0"]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode != 0, done
    assert "pool_sizes: unknown language 'ruby'" in done.stderr + done.stdout, done.stderr
