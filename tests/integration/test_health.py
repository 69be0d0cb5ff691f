"""GET /health, and what clients see when the Docker engine cannot be reached."""

from __future__ import annotations

import asyncio
from typing import Any

from .client import RpcClient
from .conftest import ServerFactory, ServerProcess, http_get


async def test_health(rpc: RpcClient, server_process: ServerProcess) -> None:
    status, body = await http_get(server_process.http_url + "/health")
    assert status == 200, body
    assert set(body) >= {"status", "docker", "sessions", "version"}, body
    assert body["status"] == "ok"
    assert body["docker"] == "ok"
    assert isinstance(body["sessions"], int)
    assert not isinstance(body["sessions"], bool)
    assert isinstance(body["version"], str)
    assert body["version"]
    listing = await rpc.result("session.list")
    assert body["sessions"] == listing["count"]


async def test_docker_unreachable(start_server: ServerFactory) -> None:
    server = await start_server(
        healthy=False, CODEBEAKER_DOCKER_URL="unix:///nonexistent/codebeaker-it.sock"
    )
    status, body = await http_get(server.http_url + "/health", timeout=15)
    assert status == 503, body
    assert body["status"] == "degraded"
    assert body["docker"] == "unreachable"
    assert body["sessions"] == 0
    assert isinstance(body["version"], str)

    client = await RpcClient.connect(server.url)
    try:
        error = await client.error(
            "session.create", {"language": "python"}, code=-32005, kind="sandbox_unavailable"
        )
        # the engine's address is the server's business: logged, not told
        assert error["message"] == "the sandbox engine cannot be reached; try again later"
        assert "codebeaker-it.sock" not in str(error), error
        await client.error(
            "execution.run",
            {"language": "python", "code": "print(1)"},
            code=-32005,
            kind="sandbox_unavailable",
        )
        assert await client.result("session.list") == {"count": 0, "sessions": []}
    finally:
        await client.close()


async def pool_state(server: ServerProcess, language: str, ready: int) -> dict[str, Any]:
    """/health's pool entry for ``language`` once it shows ``ready`` containers waiting."""
    deadline = asyncio.get_running_loop().time() + 30
    while True:
        _, body = await http_get(server.http_url + "/health")
        state: dict[str, Any] = body["pool"][language]
        if state["ready"] == ready or asyncio.get_running_loop().time() > deadline:
            return state
        await asyncio.sleep(0.05)


async def test_health_shows_the_pool_draining_and_refilling(start_server: ServerFactory) -> None:
    server = await start_server(CODEBEAKER_POOL_SIZES='{"py": 1, "go": 0}')
    _, body = await http_get(server.http_url + "/health")
    assert set(body["pool"]) == {"python"}, body  # an alias fills its language's pool; 0: none
    assert await pool_state(server, "python", 1) == {"ready": 1, "size": 1}

    client = await RpcClient.connect(server.url)
    try:
        session = await client.result("session.create", {"language": "python"})
        # Taken, then refilled behind the caller by a new container.
        assert await pool_state(server, "python", 1) == {"ready": 1, "size": 1}
        reply = await client.result(
            "session.execute",
            {
                "sessionId": session["sessionId"],
                "command": {"type": "execute_shell", "commandName": "true"},
            },
        )
        assert reply["success"], reply
    finally:
        await client.close()
