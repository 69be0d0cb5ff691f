"""REST on a server with CODEBEAKER_API_KEY: refused (401 problem, WWW-Authenticate) without
the key; the key as ``Authorization: Bearer`` or ``X-API-Key`` works, but not as ``?apiKey=``
(that is for WebSockets only: over HTTP it would end up in access logs); ``/health`` and
``/openapi.json`` stay open."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiodocker
import pytest

from .conftest import ServerProcess
from .rest import Rest, serving

API_KEY = "rest-secret-key"
RUN = {"language": "python", "code": "print('authorized')"}


@pytest.fixture(scope="module")
async def api(docker: aiodocker.Docker) -> AsyncIterator[tuple[ServerProcess, Rest]]:
    async with serving(docker, {"CODEBEAKER_API_KEY": API_KEY}) as served:
        yield served


@pytest.fixture(scope="module")
async def anonymous(api: tuple[ServerProcess, Rest]) -> Rest:
    return api[1]


REQUESTS: list[tuple[str, str, dict[str, Any]]] = [
    ("POST", "/api/v1/execute", {"json": RUN}),
    ("POST", "/api/execute", {"json": RUN}),
    ("POST", "/api/v1/execute/async", {"json": RUN}),
    ("GET", "/api/v1/executions", {}),
    ("GET", "/api/v1/executions/some-id", {}),
    ("DELETE", "/api/v1/executions/some-id", {}),
    ("POST", "/api/v1/sessions", {"json": {"language": "python"}}),
    ("GET", "/api/v1/sessions", {}),
    ("GET", "/api/v1/sessions/some-id", {}),
    ("POST", "/api/v1/sessions/some-id/commands", {"json": {"type": "list_directory"}}),
    ("PUT", "/api/v1/sessions/some-id/files/a.txt", {"content": b"x"}),
    ("GET", "/api/v1/sessions/some-id/files/a.txt", {}),
    ("DELETE", "/api/v1/sessions/some-id", {}),
    ("GET", "/api/v1/no-such-route", {}),  # refused before routing: no 404 to probe with
]
WRONG_KEYS: list[dict[str, Any]] = [
    {},
    {"headers": {"Authorization": "Bearer wrong"}},
    {"headers": {"Authorization": f"Basic {API_KEY}"}},
    {"headers": {"X-API-Key": "wrong"}},
    {"headers": {"X-API-Key": ""}},
    {"params": {"apiKey": "wrong"}},
    {"params": {"apiKey": API_KEY.upper()}},
]


@pytest.mark.parametrize(("method", "url", "kwargs"), REQUESTS)
async def test_refused_without_the_key(
    anonymous: Rest, method: str, url: str, kwargs: dict[str, Any]
) -> None:
    for wrong in WRONG_KEYS:
        problem = await anonymous.problem(method, url, 401, "unauthorized", **kwargs, **wrong)
        assert API_KEY not in str(problem), problem


async def test_bearer_header(anonymous: Rest) -> None:
    rest = anonymous.with_headers(Authorization=f"Bearer {API_KEY}")
    try:
        result = await rest.json("POST", "/api/v1/execute", json=RUN)
        assert result["stdout"] == "authorized\n", result
        execution_id = await rest.submit("print('later')")
        record = await rest.wait_for(execution_id)
        assert record["result"]["stdout"] == "later\n", record
    finally:
        await rest.aclose()


async def test_x_api_key_header(anonymous: Rest) -> None:
    rest = anonymous.with_headers(**{"X-API-Key": API_KEY})
    try:
        listing = await rest.json("GET", "/api/v1/sessions")
        assert listing == {"count": 0, "sessions": []}, listing
        await rest.problem("GET", "/api/v1/executions/unknown", 404, "execution_not_found")
    finally:
        await rest.aclose()


@pytest.mark.parametrize(
    ("method", "url", "kwargs"),
    [  # none that would leave something behind were the key let in
        ("POST", "/api/v1/execute", {"json": RUN}),
        ("GET", "/api/v1/executions", {}),
        ("GET", "/api/v1/sessions", {}),
        ("GET", "/api/v1/sessions/some-id/files/a.txt", {}),
    ],
)
async def test_the_right_key_in_the_query_is_refused_too(
    anonymous: Rest, method: str, url: str, kwargs: dict[str, Any]
) -> None:
    problem = await anonymous.problem(
        method, url, 401, "unauthorized", params={"apiKey": API_KEY}, **kwargs
    )
    assert API_KEY not in str(problem), problem


async def test_a_stray_query_key_does_not_hide_the_header_key(anonymous: Rest) -> None:
    rest = anonymous.with_headers(**{"X-API-Key": API_KEY})
    try:
        params = {"apiKey": "something else", "status": "completed", "limit": 5}
        listing = await rest.json("GET", "/api/v1/executions", params=params)
        assert isinstance(listing["executions"], list), listing
    finally:
        await rest.aclose()


def test_the_document_offers_only_header_keys(anonymous: Rest) -> None:
    schemes = anonymous.checker.document["components"]["securitySchemes"]
    assert set(schemes) == {"bearer", "apiKeyHeader"}, schemes
    assert all(scheme.get("in") != "query" for scheme in schemes.values()), schemes


async def test_open_paths(anonymous: Rest) -> None:
    health = await anonymous.json("GET", "/health")
    assert health["status"] == "ok", health
    response = await anonymous.http.get("/openapi.json")  # the document itself
    assert response.status_code == 200, response.text
    assert response.json()["paths"], response.text
