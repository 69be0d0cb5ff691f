"""The REST door in process (``httpx.ASGITransport``), with no Docker engine behind it.

Auth, body limits, routing, error bodies and the OpenAPI document; whatever needs a
container answers ``sandbox_unavailable``. Every answer is checked against the served
OpenAPI document (``tests/openapi_check.py``).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from codebeaker.app import create_app
from codebeaker.exceptions import CommandFailedError
from codebeaker.runtimes import RUNTIMES
from codebeaker.settings import Settings
from tests.openapi_check import PROBLEM_JSON, OpenAPIChecker
from tests.unit.fakes import FakeDriver, FakeService

API_KEY = f"key-{secrets.token_urlsafe(16)}"
KEY = {"X-API-Key": API_KEY}
MAX_BODY = 1024  # the smallest max_message_bytes the settings allow
BASE_URL = "http://codebeaker.test"
WAIT_SECONDS = 5.0
DOCUMENTED = {
    # shared/spec/REST.md, every route but the seed-003 aliases (SEED_003), plus /health
    ("post", "/api/v1/execute"),
    ("post", "/api/v1/execute/async"),
    ("get", "/api/v1/executions/{executionId}"),
    ("delete", "/api/v1/executions/{executionId}"),
    ("get", "/api/v1/executions"),
    ("post", "/api/v1/sessions"),
    ("get", "/api/v1/sessions"),
    ("get", "/api/v1/sessions/{sessionId}"),
    ("post", "/api/v1/sessions/{sessionId}/commands"),
    ("put", "/api/v1/sessions/{sessionId}/files/{path}"),
    ("get", "/api/v1/sessions/{sessionId}/files/{path}"),
    ("delete", "/api/v1/sessions/{sessionId}"),
    ("get", "/health"),
    # RUN.md framing B, and the language list the playground offers
    ("post", "/session"),
    ("get", "/api/v1/languages"),
    # ours: session.cancel's REST form
    ("post", "/api/v1/sessions/{sessionId}/cancel"),
}
SEED_003 = {
    ("post", "/api/execute"),
    ("post", "/api/execute/async"),
    ("get", "/api/execute/status/{executionId}"),
}
ALIASES = {
    "/api/execute": "/api/v1/execute",
    "/api/execute/async": "/api/v1/execute/async",
    "/api/execute/status/": "/api/v1/executions/",
}
"""Seed-003 path prefixes and the routes they stand for."""


def settings_for(data_dir: Path) -> Settings:
    return Settings(
        pool_sizes={},
        docker_url="unix:///nonexistent.sock",
        data_dir=data_dir,
        api_key=API_KEY,
        max_message_bytes=MAX_BODY,
    )


@dataclass
class Door:
    """An in-process client whose every answer is checked against the served document."""

    http: httpx.AsyncClient
    checker: OpenAPIChecker

    async def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        response = await self.http.request(method, url, **kwargs)
        assert "Traceback" not in response.text
        path = response.request.url.path
        for alias, documented in ALIASES.items():
            if path == alias or (alias.endswith("/") and path.startswith(alias)):
                path = documented + path[len(alias) :]
        self.checker.check(response, path)
        if response.status_code >= 400 and path != "/health":
            assert response.headers["content-type"] == PROBLEM_JSON
            body = response.json()
            assert body["status"] == response.status_code
            assert body["title"]
            assert body["detail"]
        return response

    async def problem(
        self, method: str, url: str, status: int, kind: str, **kwargs: Any
    ) -> dict[str, Any]:
        """Assert an error's status and kind; the problem document."""
        response = await self.request(method, url, **kwargs)
        assert response.status_code == status, response.text
        body: dict[str, Any] = response.json()
        assert body["kind"] == kind, body
        return body


@pytest.fixture(scope="module")
async def document(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The OpenAPI document as served (open without a key)."""
    app = create_app(settings_for(tmp_path_factory.mktemp("openapi")))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http:
        response = await http.get("/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    served: dict[str, Any] = response.json()
    return served


@pytest.fixture(scope="module")
def checker(document: dict[str, Any]) -> OpenAPIChecker:
    return OpenAPIChecker(document)


@asynccontextmanager
async def faked(data_dir: Path, checker: OpenAPIChecker) -> AsyncIterator[tuple[Door, FakeService]]:
    """The app over ``FakeService`` (sandboxes in memory) instead of a Docker engine."""
    settings = settings_for(data_dir)
    app = create_app(settings)
    service = FakeService(settings)
    app.state.service = service
    await service.start()
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http:
            yield Door(http, checker), service
    finally:
        await service.close()


@asynccontextmanager
async def serving(data_dir: Path, checker: OpenAPIChecker) -> AsyncIterator[Door]:
    """One app with its lifespan run (the execution store open), and a client of it."""
    app = create_app(settings_for(data_dir))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http:
            yield Door(http, checker)


@pytest.fixture
async def door(tmp_path: Path, checker: OpenAPIChecker) -> AsyncIterator[Door]:
    async with serving(tmp_path, checker) as door:
        yield door


async def finished(door: Door, execution_id: str) -> dict[str, Any]:
    """The record once its execution has ended."""
    async with asyncio.timeout(WAIT_SECONDS):
        while True:
            response = await door.request("GET", f"/api/v1/executions/{execution_id}", headers=KEY)
            assert response.status_code == 200
            record: dict[str, Any] = response.json()
            if record["status"] in ("completed", "failed", "cancelled"):
                return record
            await asyncio.sleep(0.01)


# ----------------------------------------------------------------------------------- auth


async def test_no_key_is_401_with_a_challenge(door: Door) -> None:
    response = await door.request("GET", "/api/v1/sessions")
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json() == {
        "type": "about:blank",
        "title": "Unauthorized",
        "status": 401,
        "detail": "missing or wrong API key",
        "kind": "unauthorized",
    }


@pytest.mark.parametrize(
    ("headers", "params"),
    [
        ({"Authorization": "Bearer wrong"}, {}),
        ({"Authorization": f"Basic {API_KEY}"}, {}),
        ({"X-API-Key": "wrong"}, {}),
        ({"X-API-Key": ""}, {}),
        ({}, {"apiKey": "wrong"}),
        ({}, {"apikey": API_KEY}),
        pytest.param({}, {"apiKey": API_KEY}, id="query-key-on-http"),
    ],
)
async def test_a_wrong_key_is_401(
    door: Door, headers: dict[str, str], params: dict[str, str]
) -> None:
    response = await door.request("GET", "/api/v1/sessions", headers=headers, params=params)
    assert response.status_code == 401
    assert response.json()["kind"] == "unauthorized"
    assert "www-authenticate" in response.headers


@pytest.mark.parametrize(
    ("headers", "params"),
    [
        ({"Authorization": f"Bearer {API_KEY}"}, {}),
        ({"Authorization": f"bearer {API_KEY}"}, {}),
        ({"X-API-Key": API_KEY}, {}),
        ({"X-API-Key": API_KEY}, {"apiKey": "wrong"}),  # a stray query key is ignored
    ],
)
async def test_the_key_is_accepted_in_each_place(
    door: Door, headers: dict[str, str], params: dict[str, str]
) -> None:
    response = await door.request("GET", "/api/v1/sessions", headers=headers, params=params)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"count": 0, "sessions": []}


async def test_a_query_key_is_refused_on_http_even_where_the_route_takes_a_query(
    door: Door,
) -> None:
    response = await door.request("GET", "/api/v1/executions", params={"apiKey": API_KEY})
    assert response.status_code == 401, response.text
    assert response.json()["kind"] == "unauthorized"
    response = await door.request(
        "POST", "/api/v1/execute", params={"apiKey": API_KEY}, json={"language": "py", "code": ""}
    )
    assert response.status_code == 401, response.text


def test_the_document_offers_only_header_keys(document: dict[str, Any]) -> None:
    schemes = document["components"]["securitySchemes"]
    assert schemes == {
        "bearer": {"type": "http", "scheme": "bearer"},
        "apiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
    }


async def test_health_and_the_document_need_no_key(door: Door) -> None:
    health = await door.request("GET", "/health")
    assert health.status_code == 503  # no Docker engine behind this app
    body = health.json()
    assert (body["status"], body["docker"], body["sessions"], body["pool"]) == (
        "degraded",
        "unreachable",
        0,
        {},
    )
    document = await door.http.get("/openapi.json")
    assert document.status_code == 200
    assert document.json()["openapi"].startswith("3.1")


# ----------------------------------------------------------------------------- bad input


async def test_malformed_json_is_400(door: Door) -> None:
    body = await door.problem(
        "POST",
        "/api/v1/execute",
        400,
        "parse_error",
        headers={**KEY, "Content-Type": "application/json"},
        content=b'{"language": "python",',
    )
    assert "JSON" in body["detail"]


async def test_an_invalid_field_is_422_naming_it(door: Door) -> None:
    body = await door.problem(
        "POST", "/api/v1/execute", 422, "invalid_params", headers=KEY, json={"language": 5}
    )
    assert [error["loc"] for error in body["errors"]] == [["language"], ["code"]]
    assert [error["type"] for error in body["errors"]] == ["string_type", "missing"]
    unknown = await door.problem(
        "POST",
        "/api/v1/execute",
        422,
        "invalid_params",
        headers=KEY,
        json={"language": "python", "code": "", "colour": "red"},
    )
    assert [error["loc"] for error in unknown["errors"]] == [["colour"]]


async def test_values_above_server_maxima_are_422(door: Door) -> None:
    maximum = Settings().max_memory_mb
    body = await door.problem(
        "POST",
        "/api/v1/sessions",
        422,
        "invalid_params",
        headers=KEY,
        json={"language": "python", "memoryLimitMB": maximum + 1},
    )
    (error,) = body["errors"]
    assert error["loc"] == ["memoryLimitMB"]
    assert "server maximum" in error["msg"]
    body = await door.problem(
        "POST",
        "/api/v1/execute",
        422,
        "invalid_params",
        headers=KEY,
        json={"language": "python", "code": "", "timeoutSeconds": 100_000},
    )
    assert [error["loc"] for error in body["errors"]] == [["timeoutSeconds"]]


async def test_an_invalid_command_is_422_naming_its_field(door: Door) -> None:
    body = await door.problem(
        "POST",
        "/api/v1/sessions/some-session/commands",
        422,
        "invalid_params",
        headers=KEY,
        json={"type": "read_file"},
    )
    assert [error["loc"] for error in body["errors"]] == [["read_file", "path"]]


async def test_an_unsupported_language_is_422_with_the_supported_ones(door: Door) -> None:
    body = await door.problem(
        "POST",
        "/api/v1/execute",
        422,
        "unsupported_language",
        headers=KEY,
        json={"language": "cobol", "code": "DISPLAY 'HI'."},
    )
    assert body["supported"] == RUNTIMES.names()


async def test_a_body_over_the_limit_is_413(door: Door) -> None:
    code = "x" * MAX_BODY
    body = await door.problem(
        "POST",
        "/api/v1/execute",
        413,
        "limit_exceeded",
        headers=KEY,
        json={"language": "python", "code": code},
    )
    assert body["limit"] == "body_size"

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it comes
        yield b'{"language": "python", "code": "'
        for _ in range(4):
            yield b"y" * 512
        yield b'"}'

    response = await door.request("POST", "/api/v1/sessions", headers=KEY, content=chunks())
    assert "content-length" not in response.request.headers
    assert response.status_code == 413
    assert (response.json()["kind"], response.json()["limit"]) == ("limit_exceeded", "body_size")


async def test_a_body_nested_too_deeply_is_400_not_500(door: Door) -> None:
    nested = b"[" * 1000  # within the body limit, beyond the parser's recursion limit
    assert len(nested) <= MAX_BODY
    body = await door.problem(
        "POST",
        "/api/v1/execute",
        400,
        "parse_error",
        headers={**KEY, "Content-Type": "application/json"},
        content=nested,
    )
    assert "nested too deeply" in body["detail"]
    await door.problem(
        "POST",
        "/api/v1/sessions/some-session/commands",
        400,
        "parse_error",
        headers=KEY,
        content=b'{"type": ' + b"[" * 1000,
    )


# ----------------------------------------------------------------- text that is not UTF-8


async def test_a_file_name_that_is_not_utf8_is_answered_as_json_not_500(
    tmp_path: Path, checker: OpenAPIChecker
) -> None:
    """A name the container's file system returns as bytes that are not UTF-8 reaches us as
    a lone surrogate: it goes out as a JSON escape."""
    async with faked(tmp_path, checker) as (door, service):
        created = await door.request(
            "POST", "/api/v1/sessions", headers=KEY, json={"language": "python"}
        )
        assert created.status_code == 201, created.text
        session_id = created.json()["sessionId"]
        (driver,) = service.sandboxes.drivers
        driver.files["/workspace/caf\udce9.txt"] = b"x"
        listed = await door.request(
            "POST",
            f"/api/v1/sessions/{session_id}/commands",
            headers=KEY,
            json={"type": "list_directory", "path": "/workspace"},
        )
        assert listed.status_code == 200
        assert listed.content.isascii()
        assert b"caf\\udce9.txt" in listed.content
        (entry,) = listed.json()["result"]["entries"]
        assert entry["name"] == "caf\udce9.txt"

        refused = await door.request(  # a client cannot send one: refused, not a 500
            "POST",
            f"/api/v1/sessions/{session_id}/commands",
            headers=KEY,
            content=b'{"type": "read_file", "path": "\\udcff.txt"}',
        )
        assert refused.status_code == 422, refused.text
        assert refused.json()["errors"][0]["type"] == "string_unicode"


class Unreadable(FakeDriver):
    """Every read is refused, naming a directory whose name is not UTF-8."""

    async def file_op(self, op: str, **params: Any) -> dict[str, Any]:
        if op == "read":
            raise CommandFailedError("permission_denied", "/workspace/caf\udce9/secret.txt")
        return await super().file_op(op, **params)


async def test_a_problem_detail_that_is_not_utf8_is_answered_as_json_not_500(
    tmp_path: Path, checker: OpenAPIChecker
) -> None:
    async with faked(tmp_path, checker) as (door, service):
        service.sandboxes.driver_class = Unreadable
        created = await door.request(
            "POST", "/api/v1/sessions", headers=KEY, json={"language": "python"}
        )
        session_id = created.json()["sessionId"]
        response = await door.request(
            "GET", f"/api/v1/sessions/{session_id}/files/secret.txt", headers=KEY
        )
        assert response.status_code == 403, response.text
        assert response.content.isascii()
        assert b"caf\\udce9" in response.content
        body = response.json()
        assert body["kind"] == "permission_denied"
        assert body["detail"] == "permission_denied: /workspace/caf\udce9/secret.txt"


async def test_a_synchronous_run_over_fake_sandboxes_answers_its_result(
    tmp_path: Path, checker: OpenAPIChecker
) -> None:
    async with faked(tmp_path, checker) as (door, service):
        response = await door.request(
            "POST", "/api/v1/execute", headers=KEY, json={"language": "python", "code": "1"}
        )
        assert response.status_code == 200, response.text
        assert response.json()["stdout"] == "python3 -u main.py"
        await service.sandboxes.drain()
        assert service.sandboxes.removed == [service.sandboxes.drivers[0].container_id]


@pytest.mark.parametrize(
    ("method", "kwargs"), [("PUT", {"content": b"data"}), ("GET", {})], ids=["upload", "download"]
)
@pytest.mark.parametrize("path", ["a%00b.txt", "x" * 5000], ids=["nul", "too-long"])
async def test_a_bad_file_path_in_the_url_is_422_not_500(
    door: Door, method: str, kwargs: dict[str, Any], path: str
) -> None:
    """The path comes from the URL: parsed like every client value, never a server error."""
    body = await door.problem(
        method,
        f"/api/v1/sessions/some-session/files/{path}",
        422,
        "invalid_params",
        headers=KEY,
        **kwargs,
    )
    assert [error["loc"] for error in body["errors"]] == [["path"]]


# -------------------------------------------------------------------------------- routing


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("GET", "/api/v1/sessions/"),
        ("POST", "/api/v1/execute/"),
        ("GET", "/api/v1/executions/"),
        ("GET", "/health/"),
    ],
)
async def test_a_trailing_slash_is_a_404_problem_not_a_redirect(
    door: Door, method: str, url: str
) -> None:
    response = await door.http.request(method, url, headers=KEY)
    assert response.status_code == 404, response.text
    assert "location" not in response.headers
    assert response.headers["content-type"] == PROBLEM_JSON
    assert response.json()["kind"] == "not_found"


async def test_an_unknown_path_is_a_404_problem(door: Door) -> None:
    body = await door.problem("GET", "/api/v1/nothing-here", 404, "not_found", headers=KEY)
    assert body["title"] == "Not Found"
    assert not door.checker.documents("/api/v1/nothing-here", "get")


async def test_a_wrong_method_is_a_405_problem(door: Door) -> None:
    response = await door.request("PATCH", "/api/v1/sessions", headers=KEY)
    assert response.status_code == 405
    assert response.json()["kind"] == "method_not_allowed"
    assert "POST" in response.headers["allow"]
    assert not door.checker.documents("/api/v1/sessions", "patch")


async def test_unknown_executions_are_404(door: Door) -> None:
    await door.problem("GET", "/api/v1/executions/unknown", 404, "execution_not_found", headers=KEY)
    await door.problem(
        "DELETE", "/api/v1/executions/unknown", 404, "execution_not_found", headers=KEY
    )
    await door.problem(
        "GET", "/api/execute/status/unknown", 404, "execution_not_found", headers=KEY
    )


@pytest.mark.parametrize(
    ("method", "url", "kwargs"),
    [
        ("GET", "/api/v1/sessions/unknown", {}),
        ("DELETE", "/api/v1/sessions/unknown", {}),
        (
            "POST",
            "/api/v1/sessions/unknown/commands",
            {"json": {"type": "execute_shell", "commandName": "ls"}},
        ),
        ("PUT", "/api/v1/sessions/unknown/files/src/main.py", {"content": b"print(1)"}),
        ("GET", "/api/v1/sessions/unknown/files/src/main.py", {}),
    ],
)
async def test_unknown_sessions_are_404(
    door: Door, method: str, url: str, kwargs: dict[str, Any]
) -> None:
    body = await door.problem(method, url, 404, "session_not_found", headers=KEY, **kwargs)
    assert body["detail"] == "session not found: unknown"


@pytest.mark.parametrize(
    "params", [{"limit": "0"}, {"limit": "1001"}, {"limit": "many"}, {"status": "sleeping"}]
)
async def test_a_bad_execution_query_is_422(door: Door, params: dict[str, str]) -> None:
    body = await door.problem(
        "GET", "/api/v1/executions", 422, "invalid_params", headers=KEY, params=params
    )
    (name,) = params
    assert [error["loc"] for error in body["errors"]] == [["query", name]]


# ------------------------------------------------------------------- without a Docker engine


async def test_what_needs_a_container_is_503(door: Door) -> None:
    await door.problem(
        "POST",
        "/api/v1/execute",
        503,
        "sandbox_unavailable",
        headers=KEY,
        json={"language": "python", "code": "print(1)"},
    )
    await door.problem(
        "POST",
        "/api/v1/sessions",
        503,
        "sandbox_unavailable",
        headers=KEY,
        json={"language": "python"},
    )
    listed = await door.request("GET", "/api/v1/sessions", headers=KEY)
    assert listed.json() == {"count": 0, "sessions": []}


async def test_an_async_execution_is_accepted_then_fails_without_a_sandbox(door: Door) -> None:
    response = await door.request(
        "POST",
        "/api/v1/execute/async",
        headers=KEY,
        json={"language": "py", "code": "print(1)"},
    )
    assert response.status_code == 202
    accepted = response.json()
    execution_id = accepted["executionId"]
    assert accepted == {
        "executionId": execution_id,
        "status": "queued",
        "statusUrl": f"/api/v1/executions/{execution_id}",
    }
    assert response.headers["location"] == accepted["statusUrl"]

    record = await finished(door, execution_id)
    assert (record["status"], record["language"]) == ("failed", "python")
    assert record["error"] == {
        "kind": "sandbox_unavailable",
        "message": "the sandbox engine cannot be reached; try again later",
    }
    assert record["result"] is None

    listed = await door.request("GET", "/api/v1/executions?status=failed&limit=5", headers=KEY)
    (row,) = listed.json()["executions"]
    assert row["executionId"] == execution_id
    assert "result" not in row  # list rows are summaries: read the record for the output
    assert row == {key: value for key, value in record.items() if key != "result"}
    none = await door.request("GET", "/api/v1/executions?status=queued", headers=KEY)
    assert none.json() == {"executions": []}
    alias = await door.request("GET", f"/api/execute/status/{execution_id}", headers=KEY)
    assert alias.json() == record
    body = await door.problem(
        "DELETE", f"/api/v1/executions/{execution_id}", 409, "execution_finished", headers=KEY
    )
    assert "failed" in body["detail"]


async def test_the_seed_003_paths_are_served(door: Door) -> None:
    response = await door.request(
        "POST", "/api/execute/async", headers=KEY, json={"language": "python", "code": ""}
    )
    assert response.status_code == 202
    await door.problem(
        "POST",
        "/api/execute",
        422,
        "unsupported_language",
        headers=KEY,
        json={"language": "cobol", "code": ""},
    )


async def test_execution_records_outlive_the_app(tmp_path: Path, checker: OpenAPIChecker) -> None:
    async with serving(tmp_path, checker) as first:
        response = await first.request(
            "POST", "/api/v1/execute/async", headers=KEY, json={"language": "go", "code": ""}
        )
        record = await finished(first, response.json()["executionId"])
    async with serving(tmp_path, checker) as second:
        again = await second.request(
            "GET", f"/api/v1/executions/{record['executionId']}", headers=KEY
        )
        assert again.json() == record


# ------------------------------------------------------------------------------- OpenAPI


def test_the_document_is_openapi_3_1_of_every_route(document: dict[str, Any]) -> None:
    assert document["openapi"].startswith("3.1.")
    served = {
        (method, path) for path, operations in document["paths"].items() for method in operations
    }
    assert served == DOCUMENTED | SEED_003
    for method, path in SEED_003:  # documented, and marked as the old names they are
        assert document["paths"][path][method]["deprecated"] is True
    schemas = document["components"]["schemas"]
    for name in ("RunRequest", "CreateSessionRequest", "Command", "Problem", "RunResult"):
        assert name in schemas
    assert "memoryLimitMB" in schemas["CreateSessionRequest"]["properties"]


def test_every_error_answer_is_documented_as_a_problem(document: dict[str, Any]) -> None:
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for status, answer in operation["responses"].items():
                if int(status) >= 400 and path != "/health":
                    assert list(answer["content"]) == [PROBLEM_JSON], (method, path, status)


async def test_the_checker_refuses_what_the_document_does_not_allow(
    door: Door, checker: OpenAPIChecker
) -> None:
    real = await door.request("GET", "/api/v1/sessions", headers=KEY)
    forged = [
        httpx.Response(200, json={"count": "none", "sessions": []}, request=real.request),
        httpx.Response(200, json={"count": 0, "sessions": [], "extra": 1}, request=real.request),
        httpx.Response(418, json={"count": 0, "sessions": []}, request=real.request),
        httpx.Response(
            404,
            json={"kind": "not_found"},
            headers={"content-type": PROBLEM_JSON},
            request=httpx.Request("GET", f"{BASE_URL}/nowhere"),
        ),
        httpx.Response(200, json={}, request=httpx.Request("GET", f"{BASE_URL}/nowhere")),
    ]
    for response in forged:
        with pytest.raises(AssertionError):
            checker.check(response)
