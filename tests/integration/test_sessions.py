"""session.create / session.list / session.close against the real server and engine."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import aiodocker
import pytest

from .client import RpcClient
from .conftest import ConnectFactory, SessionFactory, container_exists

ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
SESSION_ID = re.compile(r"^[A-Za-z0-9_-]{32,}$")
CONTAINER_ID = re.compile(r"^[0-9a-f]{64}$")
DEFAULT_CONFIG = {
    "idleTimeoutMinutes": 30,
    "maxLifetimeMinutes": 120,
    "memoryLimitMB": 512,
    "cpuLimit": 1.0,
}
LIST_FIELDS = {
    "sessionId",
    "containerId",
    "language",
    "createdAt",
    "lastActivity",
    "state",
    "executionCount",
    "idleMinutes",
    "lifetimeMinutes",
}
VERSION_COMMANDS = {
    "python": ("python3", "--version"),
    "javascript": ("node", "--version"),
    "go": ("go", "version"),
    "csharp": ("mono", "--version"),
}


def parse_iso(value: str) -> datetime:
    assert ISO_UTC.match(value), f"not ISO-8601 UTC with Z: {value!r}"
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def assert_recent(value: str) -> None:
    moment = parse_iso(value)
    now = datetime.now(UTC)
    assert now - timedelta(minutes=2) <= moment <= now + timedelta(seconds=5), value


async def listed(client: RpcClient, session_id: str) -> dict[str, Any] | None:
    result = await client.result("session.list")
    return next((row for row in result["sessions"] if row["sessionId"] == session_id), None)


@pytest.mark.parametrize(
    ("language", "canonical"),
    [
        ("python", "python"),
        ("py", "python"),
        ("javascript", "javascript"),
        ("js", "javascript"),
        ("node", "javascript"),
        ("go", "go"),
        ("golang", "go"),
        ("csharp", "csharp"),
        ("cs", "csharp"),
    ],
)
async def test_create_by_name_and_alias(
    rpc: RpcClient, make_session: SessionFactory, language: str, canonical: str
) -> None:
    created = await make_session(language)

    assert set(created) == {
        "sessionId",
        "containerId",
        "language",
        "createdAt",
        "state",
        "config",
    }, created
    assert SESSION_ID.match(created["sessionId"]), created["sessionId"]
    assert CONTAINER_ID.match(created["containerId"]), created["containerId"]
    assert created["language"] == canonical
    assert_recent(created["createdAt"])
    assert created["state"] == "Active"
    assert created["config"] == DEFAULT_CONFIG

    # The container really runs the language's toolchain.
    envelope = await rpc.shell(created["sessionId"], *VERSION_COMMANDS[canonical])
    assert envelope["success"], envelope
    assert envelope["result"]["exitCode"] == 0


async def test_session_ids_are_unique_and_unguessable(make_session: SessionFactory) -> None:
    first, second = await asyncio.gather(make_session("python"), make_session("python"))
    assert first["sessionId"] != second["sessionId"]
    assert first["containerId"] != second["containerId"]
    for created in (first, second):
        # at least 128 random bits: 22+ urlsafe-base64 characters or 32+ hex characters
        assert len(created["sessionId"]) >= 32


async def test_config_is_echoed_and_env_reaches_the_container(
    rpc: RpcClient, make_session: SessionFactory
) -> None:
    created = await make_session(
        "python",
        idleTimeoutMinutes=5,
        maxLifetimeMinutes=0.5,
        memoryLimitMB=256,
        cpuLimit=0.5,
        env={"GREETING": "hello world", "EMPTY": ""},
    )
    assert created["config"] == {
        "idleTimeoutMinutes": 5,
        "maxLifetimeMinutes": 0.5,
        "memoryLimitMB": 256,
        "cpuLimit": 0.5,
    }
    envelope = await rpc.sh(created["sessionId"], 'printf "%s|%s" "$GREETING" "${EMPTY-unset}"')
    assert envelope["result"]["stdout"] == "hello world|", envelope


async def test_snake_case_params_are_accepted(make_session: SessionFactory) -> None:
    created = await make_session(
        "py",
        idle_timeout_minutes=7,
        max_lifetime_minutes=9,
        memory_limit_mb=200,
        cpu_limit=0.25,
    )
    assert created["config"] == {
        "idleTimeoutMinutes": 7,
        "maxLifetimeMinutes": 9,
        "memoryLimitMB": 200,
        "cpuLimit": 0.25,
    }


def _names_field(error: dict[str, Any], *names: str) -> bool:
    return any(any(part in names for part in item["loc"]) for item in error["data"]["errors"])


def assert_invalid_params(error: dict[str, Any], *names: str) -> None:
    assert error["code"] == -32602, error
    data = error["data"]
    assert data["kind"] == "invalid_params", error
    assert isinstance(data["errors"], list), error
    assert data["errors"], error
    for item in data["errors"]:
        assert {"loc", "msg", "type"} <= set(item), item
        assert isinstance(item["loc"], list), item
    if names:
        assert _names_field(error, *names), f"no error names {names}: {error}"


@pytest.mark.parametrize(
    ("field", "snake", "value"),
    [
        ("memoryLimitMB", "memory_limit_mb", 999999),
        ("cpuLimit", "cpu_limit", 64),
        ("idleTimeoutMinutes", "idle_timeout_minutes", 10**7),
        ("maxLifetimeMinutes", "max_lifetime_minutes", 10**7),
    ],
)
async def test_values_above_maxima_are_rejected_not_clamped(
    rpc: RpcClient, field: str, snake: str, value: float
) -> None:
    before = await rpc.result("session.list")
    error = await rpc.error("session.create", {"language": "python", field: value})
    assert_invalid_params(error, field, snake, "memoryLimitMb")
    after = await rpc.result("session.list")
    assert after["count"] == before["count"], "a rejected create must not start a session"


@pytest.mark.parametrize(
    ("params", "names"),
    [
        ({"language": "python", "memoryLimitMB": 0}, ("memoryLimitMB", "memory_limit_mb")),
        ({"language": "python", "cpuLimit": -1}, ("cpuLimit", "cpu_limit")),
        ({"language": "python", "cpuLimit": 1e-10}, ("cpuLimit",)),  # Docker: no limit
        ({"language": "python", "cpuLimit": 0.001}, ("cpuLimit",)),
        ({"language": "python", "idleTimeoutMinutes": "soon"}, ("idleTimeoutMinutes",)),
        ({"language": "python", "env": {"A": 1}}, ("env",)),
        ({"language": "python", "env": {"A": ["x"]}}, ("env",)),
        ({"language": "python", "env": "A=1"}, ("env",)),
        ({}, ("language",)),
        ({"language": 42}, ("language",)),
    ],
)
async def test_bad_create_params(
    rpc: RpcClient, params: dict[str, Any], names: tuple[str, ...]
) -> None:
    error = await rpc.error("session.create", params)
    assert_invalid_params(error, *names)


async def test_invalid_params_name_every_bad_field(rpc: RpcClient) -> None:
    error = await rpc.error(
        "session.create", {"language": "python", "memoryLimitMB": 999999, "cpuLimit": 64}
    )
    assert_invalid_params(error)
    assert _names_field(error, "memoryLimitMB", "memory_limit_mb", "memoryLimitMb"), error
    assert _names_field(error, "cpuLimit", "cpu_limit"), error


@pytest.mark.parametrize("language", ["cobol", "", "pythonx"])
async def test_unknown_language(rpc: RpcClient, language: str) -> None:
    response = await rpc.call("session.create", {"language": language})
    error = response["error"]
    if language == "":
        # an empty name may be caught by validation or by the registry; both are fine
        assert error["code"] in (-32602, -32003), error
        return
    assert error["code"] == -32003, error
    assert error["data"]["kind"] == "unsupported_language"
    assert {"python", "javascript", "go", "csharp"} <= set(error["data"]["supported"])


async def test_list_shape(rpc: RpcClient, make_session: SessionFactory) -> None:
    created = await make_session("javascript")
    result = await rpc.result("session.list")
    assert set(result) == {"count", "sessions"}, result
    assert result["count"] == len(result["sessions"])
    row = await listed(rpc, created["sessionId"])
    assert row is not None, result
    assert set(row) == LIST_FIELDS, row
    assert row["containerId"] == created["containerId"]
    assert row["language"] == "javascript"
    assert row["createdAt"] == created["createdAt"]
    assert_recent(row["lastActivity"])
    assert row["state"] == "Active"
    assert row["executionCount"] == 0
    for key in ("idleMinutes", "lifetimeMinutes"):
        assert isinstance(row[key], (int, float)), row
        assert 0 <= row[key] < 2, row
    for other in result["sessions"]:
        assert set(other) == LIST_FIELDS, other
        assert other["state"] in ("Active", "Idle"), other


@pytest.mark.timeout(60)
async def test_execution_count_and_last_activity(
    rpc: RpcClient, make_session: SessionFactory
) -> None:
    created = await make_session("python")
    session_id = created["sessionId"]
    await asyncio.sleep(1.2)
    first = await listed(rpc, session_id)
    assert first is not None
    await asyncio.sleep(1.2)
    second = await listed(rpc, session_id)
    assert second is not None
    assert second["lastActivity"] == first["lastActivity"], "session.list is not activity"
    assert second["executionCount"] == 0
    assert second["idleMinutes"] >= first["idleMinutes"]

    assert (await rpc.sh(session_id, "true"))["success"]
    failing = await rpc.execute(session_id, {"type": "read_file", "path": "missing.txt"})
    assert failing["success"] is False
    assert (await rpc.shell(session_id, "echo", "x"))["success"]

    third = await listed(rpc, session_id)
    assert third is not None
    assert third["executionCount"] == 3, third
    assert parse_iso(third["lastActivity"]) > parse_iso(first["lastActivity"]), (first, third)
    assert third["state"] == "Active"
    assert third["idleMinutes"] < second["idleMinutes"] + 0.01


async def test_close(
    rpc: RpcClient, docker: aiodocker.Docker, make_session: SessionFactory
) -> None:
    created = await make_session("python")
    session_id, container_id = created["sessionId"], created["containerId"]
    assert await container_exists(docker, container_id)

    closed = await rpc.result("session.close", {"sessionId": session_id})
    assert closed == {"sessionId": session_id, "closed": True}
    # removed before the reply
    assert not await container_exists(docker, container_id)
    assert await listed(rpc, session_id) is None

    await rpc.error(
        "session.close", {"sessionId": session_id}, code=-32001, kind="session_not_found"
    )
    await rpc.error(
        "session.execute",
        {"sessionId": session_id, "command": {"type": "list_directory"}},
        code=-32001,
        kind="session_not_found",
    )


async def test_close_accepts_snake_case(rpc: RpcClient, make_session: SessionFactory) -> None:
    created = await make_session("python")
    closed = await rpc.result("session.close", {"session_id": created["sessionId"]})
    assert closed == {"sessionId": created["sessionId"], "closed": True}


@pytest.mark.parametrize("session_id", ["does-not-exist", "A" * 32, "x"])
async def test_unknown_session(rpc: RpcClient, session_id: str) -> None:
    await rpc.error(
        "session.close", {"sessionId": session_id}, code=-32001, kind="session_not_found"
    )
    await rpc.error(
        "session.execute",
        {"sessionId": session_id, "command": {"type": "execute_shell", "commandName": "true"}},
        code=-32001,
        kind="session_not_found",
    )


async def test_missing_session_id(rpc: RpcClient) -> None:
    error = await rpc.error("session.close", {})
    assert_invalid_params(error, "sessionId", "session_id")
    error = await rpc.error("session.execute", {"command": {"type": "list_directory"}})
    assert_invalid_params(error, "sessionId", "session_id")


async def test_reconnect_and_use_from_another_connection(
    connect: ConnectFactory, make_session: SessionFactory
) -> None:
    first = await connect()
    created = await make_session("python", client=first)
    session_id = created["sessionId"]
    await first.ok(session_id, {"type": "write_file", "path": "note.txt", "content": "kept"})
    await first.close()

    second = await connect()
    read = await second.ok(session_id, {"type": "read_file", "path": "note.txt"})
    assert read["content"] == "kept"
    row = await listed(second, session_id)
    assert row is not None
    assert row["executionCount"] == 2
    closed = await second.result("session.close", {"sessionId": session_id})
    assert closed["closed"] is True
