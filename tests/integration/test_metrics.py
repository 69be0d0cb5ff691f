"""GET /metrics after known activity on a fresh server: every counted thing is what was done."""

from __future__ import annotations

import asyncio

import aiodocker
import httpx
from prometheus_client.parser import text_string_to_metric_families

from codebeaker.constants import AGENT_PATH

from .client import RpcClient
from .conftest import ServerFactory, ServerProcess

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(server: ServerProcess, **headers: str) -> Samples:
    async with httpx.AsyncClient() as http:
        response = await http.get(server.http_url + "/metrics", headers=headers)
    assert response.status_code == 200, response.text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def shell(*argv: str, timeout: float | None = None) -> dict[str, object]:
    command: dict[str, object] = {
        "type": "execute_shell",
        "commandName": argv[0],
        "args": list(argv[1:]),
    }
    if timeout is not None:
        command["timeoutSeconds"] = timeout
    return command


async def test_metrics_after_known_activity(start_server: ServerFactory) -> None:
    server = await start_server(CODEBEAKER_MAX_SESSIONS="2", CODEBEAKER_POOL_SIZES='{"python": 1}')
    client = await RpcClient.connect(server.url)
    try:
        first = (await client.result("session.create", {"language": "python"}))["sessionId"]
        second = (await client.result("session.create", {"language": "python"}))["sessionId"]
        await client.error(
            "session.create", {"language": "python"}, code=-32004, kind="limit_exceeded"
        )
        await client.execute(first, shell("true"))
        await client.execute(first, shell("false"))
        await client.execute(first, shell("sleep", "5", timeout=0.5))
        await client.execute(first, {"type": "read_file", "path": "/workspace/missing"})
        await client.result("session.close", {"sessionId": second})
        samples = await scrape(server)
    finally:
        await client.close()

    created = value(samples, "codebeaker_sessions_created_total", language="python", tenant="local")
    assert created == 2
    assert value(samples, "codebeaker_sessions_open", language="python", tenant="local") == 1
    assert value(samples, "codebeaker_sessions_closed_total", reason="client") == 1
    assert value(samples, "codebeaker_rejected_requests_total", limit="sessions") == 1
    for outcome in ("ok", "nonzero_exit", "timeout"):
        assert (
            value(samples, "codebeaker_commands_total", type="execute_shell", outcome=outcome) == 1
        ), outcome
    assert (
        value(samples, "codebeaker_commands_total", type="read_file", outcome="file_not_found") == 1
    )
    histogram = "codebeaker_command_duration_seconds_count"
    assert value(samples, histogram, type="execute_shell") == 3
    assert value(samples, "codebeaker_connections", door="jsonrpc") == 1
    assert value(samples, "codebeaker_pool_size", language="python") == 1
    assert value(samples, "codebeaker_run_queue_depth", queue="run") == 0
    assert value(samples, "process_resident_memory_bytes") > 0


KILL_AGENT = (
    "import os\n"
    "for pid in filter(str.isdigit, os.listdir('/proc')):\n"
    "    try:\n"
    "        if {agent!r} in open(f'/proc/{{pid}}/cmdline').read():\n"
    "            os.kill(int(pid), 9)\n"
    "    except OSError:\n"
    "        pass\n"
)


async def test_run_queue_waits_and_agent_restarts_are_counted(
    start_server: ServerFactory, docker: aiodocker.Docker, driver: str
) -> None:
    server = await start_server()
    client = await RpcClient.connect(server.url)
    try:
        run = await client.result("execution.run", {"language": "python", "code": "print(6 * 7)"})
        assert run["stdout"].strip() == "42", run
        created = await client.result("session.create", {"language": "python"})
        await client.execute(created["sessionId"], shell("true"))
        container = docker.containers.container(created["containerId"])
        killer = await container.exec(
            ["python3", "-c", KILL_AGENT.format(agent=AGENT_PATH)], user="0:0"
        )
        await killer.start(detach=True)
        await asyncio.sleep(1)
        await client.execute(created["sessionId"], shell("true"))  # under a fresh agent
        samples = await scrape(server)
    finally:
        await client.close()
    assert value(samples, "codebeaker_run_queue_wait_seconds_count", queue="run") == 1
    restarts = value(samples, "codebeaker_agent_restarts_total")
    assert restarts == (1 if driver == "agent" else 0), restarts


async def test_the_metrics_key_guards_the_scrape(start_server: ServerFactory) -> None:
    key = "m" * 24
    server = await start_server(CODEBEAKER_METRICS_KEY=key, CODEBEAKER_API_KEY="tenant-key")
    async with httpx.AsyncClient() as http:
        refused = await http.get(server.http_url + "/metrics")
        tenant = await http.get(
            server.http_url + "/metrics", headers={"Authorization": "Bearer tenant-key"}
        )
    assert refused.status_code == 401
    assert tenant.status_code == 401  # a tenant's key is not the operator's
    samples = await scrape(server, Authorization=f"Bearer {key}")
    assert value(samples, "codebeaker_sessions_created_total") == 0
