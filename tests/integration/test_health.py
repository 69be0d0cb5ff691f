"""GET /health, and what clients see when the Docker engine cannot be reached."""

from __future__ import annotations

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
        await client.error(
            "session.create", {"language": "python"}, code=-32005, kind="sandbox_unavailable"
        )
        await client.error(
            "execution.run",
            {"language": "python", "code": "print(1)"},
            code=-32005,
            kind="sandbox_unavailable",
        )
        assert await client.result("session.list") == {"count": 0, "sessions": []}
    finally:
        await client.close()
