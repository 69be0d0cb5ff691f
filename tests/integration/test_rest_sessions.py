"""REST sessions: create, list, commands, raw file transfer, close, a session whose
container died, the same session over both doors, and bad input. One server for the
module (default settings, agent driver, a small write limit)."""

from __future__ import annotations

import base64
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiodocker
import pytest

from .client import RpcClient
from .conftest import MIB, ServerProcess, container_exists, wait_until
from .rest import Rest, serving

MAX_WRITE_BYTES = 2048  # the setting's minimum is 1024
BINARY = bytes(range(256)) * 4 + b"\x00\xff\x00"
OUTSIDE = "path_outside_workspace"
JSON_TYPE = {"content-type": "application/json"}

Api = tuple[ServerProcess, Rest]
MakeSession = Callable[..., Awaitable[dict[str, Any]]]


@pytest.fixture(scope="module")
async def api(docker: aiodocker.Docker) -> AsyncIterator[Api]:
    env = {"CODEBEAKER_MAX_WRITE_BYTES": str(MAX_WRITE_BYTES), "CODEBEAKER_POOL_SIZES": "{}"}
    async with serving(docker, env) as served:
        yield served


@pytest.fixture(scope="module")
async def rest(api: Api) -> Rest:
    return api[1]


@pytest.fixture
async def make_session(rest: Rest) -> AsyncIterator[MakeSession]:
    """``POST /api/v1/sessions``; every session made is closed (if still open) afterwards."""
    made: list[str] = []

    async def make(language: str = "python", **params: Any) -> dict[str, Any]:
        response = await rest.post(
            "/api/v1/sessions", json={"language": language, **params}, expect=201
        )
        info: dict[str, Any] = response.json()
        made.append(info["sessionId"])
        assert response.headers["location"] == f"/api/v1/sessions/{info['sessionId']}"
        return info

    yield make
    for session_id in made:
        response = await rest.delete(f"/api/v1/sessions/{session_id}")
        assert response.status_code in (200, 404, 410), response.text


@pytest.fixture(scope="module")
async def session_id(rest: Rest) -> AsyncIterator[str]:
    """One python session shared by the tests that do not hurt it."""
    info = await rest.json("POST", "/api/v1/sessions", 201, json={"language": "python"})
    yield info["sessionId"]
    await rest.request("DELETE", f"/api/v1/sessions/{info['sessionId']}", expect=200)


async def command(rest: Rest, session_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """``POST …/commands``: the session.execute envelope."""
    outcome: dict[str, Any] = await rest.json(
        "POST", f"/api/v1/sessions/{session_id}/commands", json=body
    )
    assert set(outcome) == {"success", "result", "error", "durationMs"}, outcome
    return outcome


async def ok(rest: Rest, session_id: str, body: dict[str, Any]) -> dict[str, Any]:
    outcome = await command(rest, session_id, body)
    assert outcome["success"] is True, outcome
    assert outcome["error"] is None, outcome
    result: dict[str, Any] = outcome["result"]
    return result


def files(session_id: str, path: str) -> str:
    return f"/api/v1/sessions/{session_id}/files/{path}"


# ------------------------------------------------------------------------------- sessions


async def test_create_list_get(rest: Rest, make_session: MakeSession) -> None:
    info = await make_session("py", idle_timeout_minutes=5, env={"GREETING": "hi there"})
    assert set(info) == {
        "sessionId",
        "containerId",
        "language",
        "createdAt",
        "state",
        "config",
    }, info
    assert len(info["sessionId"]) >= 22, info  # at least 128 random bits
    assert re.fullmatch(r"[0-9a-f]{64}", info["containerId"]), info
    assert info["language"] == "python"
    assert info["state"] == "Active"
    assert info["config"]["idleTimeoutMinutes"] == 5, info  # snake_case accepted
    session_id = info["sessionId"]

    listing = await rest.json("GET", "/api/v1/sessions")
    assert listing["count"] == len(listing["sessions"]), listing
    rows = [row for row in listing["sessions"] if row["sessionId"] == session_id]
    assert len(rows) == 1, listing
    one = await rest.json("GET", f"/api/v1/sessions/{session_id}")
    assert one["containerId"] == info["containerId"], one
    assert one["executionCount"] == 0, one
    assert one["state"] == "Active", one

    result = await ok(
        rest,
        session_id,
        {"type": "execute_shell", "commandName": "sh", "args": ["-c", "echo $GREETING"]},
    )
    assert result["stdout"] == "hi there\n", result
    assert (await rest.json("GET", f"/api/v1/sessions/{session_id}"))["executionCount"] == 1


async def test_create_refused(rest: Rest) -> None:
    problem = await rest.problem(
        "POST", "/api/v1/sessions", 422, "unsupported_language", json={"language": "cobol"}
    )
    assert "python" in problem["supported"], problem
    problem = await rest.problem(
        "POST",
        "/api/v1/sessions",
        422,
        "invalid_params",
        json={"language": "python", "memoryLimitMB": 10**6, "cpuLimit": "lots"},
    )
    assert {error["loc"][-1] for error in problem["errors"]} == {"memoryLimitMB", "cpuLimit"}


async def test_commands(rest: Rest, session_id: str) -> None:
    before = (await rest.json("GET", f"/api/v1/sessions/{session_id}"))["executionCount"]
    written = await ok(
        rest,
        session_id,
        {"type": "write_file", "path": "rest/hello.py", "content": "print(6*7)"},
    )
    assert written == {"path": "/workspace/rest/hello.py", "bytes": 10}, written
    result = await ok(
        rest,
        session_id,
        {"type": "execute_shell", "commandName": "python3", "args": ["rest/hello.py"]},
    )
    assert result["stdout"] == "42\n", result
    assert result["exitCode"] == 0, result
    read = await ok(rest, session_id, {"path": "rest/hello.py", "type": "read_file"})
    assert read["content"] == "print(6*7)", read
    # the seed's alias of execute_shell
    result = await ok(rest, session_id, {"type": "shell", "command": "echo", "args": ["a;b"]})
    assert result["stdout"] == "a;b\n", result

    # A command that ran and failed is a normal answer: 200 with success false.
    failed = await command(
        rest, session_id, {"type": "execute_shell", "commandName": "sh", "args": ["-c", "exit 3"]}
    )
    assert failed["success"] is False, failed
    assert failed["result"]["exitCode"] == 3, failed
    assert isinstance(failed["error"], str), failed
    assert failed["error"], failed
    missing = await command(rest, session_id, {"type": "read_file", "path": "rest/missing.txt"})
    assert missing["success"] is False, missing
    assert missing["error"].startswith("file_not_found:"), missing
    outside = await command(rest, session_id, {"type": "read_file", "path": "/etc/passwd"})
    assert outside["error"].startswith(f"{OUTSIDE}:"), outside

    after = (await rest.json("GET", f"/api/v1/sessions/{session_id}"))["executionCount"]
    assert after == before + 7, (before, after)

    problem = await rest.problem(
        "POST",
        f"/api/v1/sessions/{session_id}/commands",
        422,
        "invalid_params",
        json={"type": "teleport", "path": "x"},
    )
    assert problem["errors"], problem


# ---------------------------------------------------------------------------------- files


async def test_put_and_get_raw_bytes(rest: Rest, session_id: str) -> None:
    url = files(session_id, "rest/data/blob.bin")
    written = await rest.json(
        "PUT", url, content=BINARY, headers={"content-type": "application/octet-stream"}
    )
    assert written == {"path": "/workspace/rest/data/blob.bin", "bytes": len(BINARY)}, written
    response = await rest.get(url, expect=200)
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.content == BINARY

    # the same bytes as a command sees them
    read = await ok(rest, session_id, {"type": "read_file", "path": url.split("/files/")[1]})
    assert read["bytes"] == len(BINARY), read
    read = await ok(
        rest, session_id, {"type": "read_file", "path": "rest/data/blob.bin", "encoding": "base64"}
    )
    assert base64.b64decode(read["content"]) == BINARY

    # replaced, whatever the content type (or none)
    for content, headers in ((b"text now\n", {"content-type": "text/plain"}), (b"", {})):
        written = await rest.json("PUT", url, content=content, headers=headers)
        assert written["bytes"] == len(content), written
        assert (await rest.get(url, expect=200)).content == content

    # an absolute path under /workspace or /tmp is fine too
    await rest.json("PUT", files(session_id, "/tmp/rest-abs.bin"), content=b"\xff")
    assert (await rest.get(files(session_id, "/tmp/rest-abs.bin"), expect=200)).content == b"\xff"


async def test_write_limit(rest: Rest, session_id: str) -> None:
    url = files(session_id, "rest/limit.bin")
    written = await rest.json("PUT", url, content=b"\x01" * MAX_WRITE_BYTES)
    assert written["bytes"] == MAX_WRITE_BYTES, written
    problem = await rest.problem(
        "PUT", url, 413, "limit_exceeded", content=b"\x02" * (MAX_WRITE_BYTES + 1)
    )
    assert str(MAX_WRITE_BYTES) in problem["detail"], problem

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the stream is counted
        for _ in range(4):
            yield b"\x03" * 1000

    await rest.problem("PUT", url, 413, "limit_exceeded", content=chunks())
    # the file was not touched by the refused writes
    assert (await rest.get(url, expect=200)).content == b"\x01" * MAX_WRITE_BYTES


async def test_get_missing_file(rest: Rest, session_id: str) -> None:
    problem = await rest.problem(
        "GET", files(session_id, "rest/no/such/file.txt"), 404, "file_not_found"
    )
    assert "file.txt" in problem["detail"], problem


@pytest.mark.parametrize(
    "path",
    [
        "../../etc/codebeaker-evil",  # raw dot segments (sent as they are, not normalized)
        "rest/../../../etc/codebeaker-evil",
        "%2e%2e/%2e%2e/etc/codebeaker-evil",  # encoded dot segments
        "%2E%2E%2F%2E%2E%2Fetc/codebeaker-evil",  # encoded slashes as well
        "/etc/codebeaker-evil",  # absolute: …/files//etc/…
    ],
)
async def test_paths_outside_the_workspace(rest: Rest, session_id: str, path: str) -> None:
    target = f"/api/v1/sessions/{session_id}/files/{path}"
    for method, content in (("PUT", b"evil"), ("GET", None)):
        problem = await rest.problem(method, "/", 422, OUTSIDE, target=target, content=content)
        assert [error["loc"] for error in problem["errors"]] == [["path"]], problem
        assert problem["errors"][0]["type"] == OUTSIDE, problem
    # nothing was written
    result = await command(
        rest,
        session_id,
        {"type": "execute_shell", "commandName": "ls", "args": ["/etc/codebeaker-evil"]},
    )
    assert result["result"]["exitCode"] != 0, result


async def test_dot_segments_that_stay_inside(rest: Rest, session_id: str) -> None:
    target = f"/api/v1/sessions/{session_id}/files/rest/sub/../inside.txt"
    written = await rest.json("PUT", "/", target=target, content=b"inside")
    assert written["path"] == "/workspace/rest/inside.txt", written
    assert (await rest.get(files(session_id, "rest/inside.txt"), expect=200)).content == b"inside"


# ------------------------------------------------------------------------- closing, dying


async def test_close(docker: aiodocker.Docker, rest: Rest, make_session: MakeSession) -> None:
    info = await make_session()
    session_id = info["sessionId"]
    closed = await rest.json("DELETE", f"/api/v1/sessions/{session_id}")
    assert closed == {"sessionId": session_id, "closed": True}, closed
    assert not await container_exists(docker, info["containerId"]), "removed before the reply"
    await rest.problem("DELETE", f"/api/v1/sessions/{session_id}", 404, "session_not_found")
    await rest.problem("GET", f"/api/v1/sessions/{session_id}", 404, "session_not_found")
    await rest.problem(
        "POST",
        f"/api/v1/sessions/{session_id}/commands",
        404,
        "session_not_found",
        json={"type": "list_directory"},
    )
    await rest.problem("PUT", files(session_id, "a.txt"), 404, "session_not_found", content=b"x")
    await rest.problem("GET", files(session_id, "a.txt"), 404, "session_not_found")
    listing = await rest.json("GET", "/api/v1/sessions")
    assert session_id not in {row["sessionId"] for row in listing["sessions"]}


async def test_terminated_session(
    docker: aiodocker.Docker, rest: Rest, make_session: MakeSession
) -> None:
    info = await make_session()
    session_id = info["sessionId"]
    await docker.containers.container(info["containerId"]).delete(force=True)

    async def reaped() -> bool:  # listing does not consume the "terminated" answer
        listing = await rest.json("GET", "/api/v1/sessions")
        return session_id not in {row["sessionId"] for row in listing["sessions"]}

    assert await wait_until(reaped, 20, 0.2), "the reaper did not notice the dead container"
    await rest.problem("GET", f"/api/v1/sessions/{session_id}", 410, "session_terminated")
    await rest.problem("GET", f"/api/v1/sessions/{session_id}", 404, "session_not_found")


async def test_one_session_two_doors(api: Api) -> None:
    server, rest = api
    rpc = await RpcClient.connect(server.url)
    try:
        created = await rpc.result("session.create", {"language": "python"})
        session_id = created["sessionId"]
        rows = (await rest.json("GET", "/api/v1/sessions"))["sessions"]
        assert session_id in {row["sessionId"] for row in rows}

        written = await rest.json("PUT", files(session_id, "both/doors.bin"), content=BINARY)
        assert written["bytes"] == len(BINARY), written
        read = await rpc.ok(
            session_id, {"type": "read_file", "path": "both/doors.bin", "encoding": "base64"}
        )
        assert base64.b64decode(read["content"]) == BINARY

        await rpc.ok(session_id, {"type": "write_file", "path": "both/rpc.txt", "content": "rpc"})
        assert (await rest.get(files(session_id, "both/rpc.txt"), expect=200)).content == b"rpc"

        closed = await rest.json("DELETE", f"/api/v1/sessions/{session_id}")
        assert closed == {"sessionId": session_id, "closed": True}
        await rpc.error(
            "session.close", {"sessionId": session_id}, code=-32001, kind="session_not_found"
        )
    finally:
        await rpc.close()


# ------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize("body", [b"{not json", b"", b'{"language": "python",}', b"\xff\xfe{}"])
async def test_malformed_json(rest: Rest, session_id: str, body: bytes) -> None:
    for url in (
        "/api/v1/execute",
        "/api/v1/execute/async",
        "/api/v1/sessions",
        f"/api/v1/sessions/{session_id}/commands",
    ):
        await rest.problem("POST", url, 400, "parse_error", content=body, headers=JSON_TYPE)


@pytest.mark.parametrize(
    ("url", "body", "named"),
    [
        ("/api/v1/execute", {"language": "python", "code": 123}, ["code"]),
        ("/api/v1/execute", {"code": "print(1)"}, ["language"]),
        (
            "/api/v1/execute/async",
            {"language": "python", "code": "", "timeoutSeconds": "soon", "stdin": 5},
            ["timeoutSeconds", "stdin"],
        ),
        ("/api/v1/execute", {"language": "python", "code": "", "timeoutSeconds": 10**6}, None),
        ("/api/v1/execute", {"language": "python", "code": "", "bogus": 1}, ["bogus"]),
        ("/api/v1/execute", ["python", "print(1)"], None),
        ("/api/v1/sessions", {"language": "python", "idleTimeoutMinutes": -1}, None),
        ("/api/v1/sessions", {"language": "python", "env": {"A": 1}}, None),
    ],
)
async def test_wrong_types(
    rest: Rest, url: str, body: Any, named: list[str] | None, session_id: str
) -> None:
    problem = await rest.problem("POST", url, 422, "invalid_params", json=body)
    errors = problem["errors"]
    assert errors, problem
    for error in errors:
        assert set(error) == {"loc", "msg", "type"}, error
    if named is not None:
        assert {error["loc"][-1] for error in errors} == set(named), problem
    elif isinstance(body, dict):
        fields = {str(part) for error in errors for part in error["loc"]}
        assert fields & set(body), problem  # the bad field is named


async def test_wrong_command_types(rest: Rest, session_id: str) -> None:
    problem = await rest.problem(
        "POST",
        f"/api/v1/sessions/{session_id}/commands",
        422,
        "invalid_params",
        json={"type": "write_file", "path": 5, "content": "x"},
    )
    assert any("path" in error["loc"] for error in problem["errors"]), problem


async def test_bodies_over_the_message_limit(rest: Rest, session_id: str) -> None:
    code = "#" * (MIB + 10)
    await rest.problem(
        "POST", "/api/v1/execute", 413, "limit_exceeded", json={"language": "python", "code": code}
    )
    big = b'{"language": "python", "code": "' + b"#" * (MIB + 10) + b'"}'

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it streams
        for start in range(0, len(big), 64 * 1024):
            yield big[start : start + 64 * 1024]

    for url in ("/api/v1/execute/async", "/api/v1/sessions"):
        await rest.problem("POST", url, 413, "limit_exceeded", content=chunks(), headers=JSON_TYPE)
    await rest.problem(
        "POST",
        f"/api/v1/sessions/{session_id}/commands",
        413,
        "limit_exceeded",
        json={"type": "write_file", "path": "big.txt", "content": "x" * (MIB + 10)},
    )


async def test_unknown_paths_and_methods(rest: Rest) -> None:
    for url in ("/api/v2/execute", "/api/v1/nothing", "/api/v1/sessions/x/y/z"):
        await rest.problem("GET", url, 404, "not_found")
    await rest.problem("PATCH", "/api/v1/sessions", 405, "method_not_allowed")
    await rest.problem("DELETE", "/api/v1/execute", 405, "method_not_allowed")
    await rest.problem("GET", f"/api/v1/executions/{'x' * 300}", 422, "invalid_params")


async def test_still_healthy(rest: Rest) -> None:
    """After all of the above the server still answers (run last in this module)."""
    health = await rest.json("GET", "/health")
    assert health["status"] == "ok", health
    result = await rest.json(
        "POST", "/api/v1/execute", json={"language": "python", "code": "print('alive')"}
    )
    assert result["stdout"] == "alive\n", result
