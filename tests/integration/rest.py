"""A REST client for the integration suite: httpx against a real server process, and every
answer checked against the server's own ``GET /openapi.json`` before a test sees it.

``Rest.request`` (and ``get``/``post``/``put``/``delete``) send one request, check the
answer (the OpenAPI document, no traceback, problem documents shaped like one) and return it;
``expect=`` asserts the status. ``problem`` asserts an error's status and kind and returns the
problem document. ``target=`` sends a raw request target (httpx would otherwise remove ``..``
segments from the URL before sending it).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import unquote

import aiodocker
import httpx

from ..openapi_check import OCTETS, PROBLEM_JSON, OpenAPIChecker
from .conftest import ServerProcess, stop_and_check

__all__ = ["FINISHED", "Rest", "serving"]

FINISHED = frozenset({"completed", "failed", "cancelled"})
TIMEOUT = httpx.Timeout(120, connect=10)


class Rest:
    """One server's REST door. Requests carry ``headers`` (e.g. an API key) by default."""

    def __init__(self, base_url: str, checker: OpenAPIChecker, **headers: str) -> None:
        self.base_url = base_url
        self.checker = checker
        self.http = httpx.AsyncClient(
            base_url=base_url, headers=headers, timeout=TIMEOUT, trust_env=False
        )

    @classmethod
    async def open(cls, base_url: str, **headers: str) -> Rest:
        """Read the server's OpenAPI document (open without a key) and connect."""
        async with httpx.AsyncClient(base_url=base_url, trust_env=False, timeout=30) as http:
            response = await http.get("/openapi.json")
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("application/json")
        document = response.json()
        assert document["openapi"].startswith("3.1"), document["openapi"]
        return cls(base_url, OpenAPIChecker(document), **headers)

    def with_headers(self, **headers: str) -> Rest:
        """Another client of the same server (same document), with other default headers."""
        return Rest(self.base_url, self.checker, **headers)

    async def aclose(self) -> None:
        await self.http.aclose()

    async def request(
        self,
        method: str,
        url: str,
        *,
        expect: int | None = None,
        target: str | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """Send, check against the document, and (with ``expect``) assert the status.
        ``target`` is sent verbatim as the request target (``url`` is then ignored)."""
        if target is not None:
            kwargs["extensions"] = {"target": target.encode("ascii")}
            url = "/"
        response = await self.http.request(method, url, **kwargs)
        self.check(response, target)
        if expect is not None:
            assert response.status_code == expect, (
                f"{method} {target or url}: expected {expect}, got {response.status_code}: "
                f"{response.text[:2000]}"
            )
        return response

    def check(self, response: httpx.Response, target: str | None = None) -> None:
        """Every answer: no traceback, documented (``tests/openapi_check.py``), and every
        error a problem document whose ``status`` is the answer's."""
        text = response.content.decode(errors="replace")
        assert "Traceback" not in text, f"a response carried a traceback: {text[:2000]}"
        request = response.request
        path = unquote(target.split("?")[0]) if target is not None else request.url.path
        media_type = response.headers.get("content-type", "").split(";")[0].strip()
        operation = self.checker.operation(path, request.method)
        if response.status_code == 401 and operation is None:
            # Refused before routing, so an unknown path is not told apart from a known
            # one. Every documented operation declares this answer; check it as GET
            # /api/v1/sessions would be answered.
            assert request.method == "GET", "send GET to undocumented paths without a key"
            self.checker.check(response, "/api/v1/sessions")
        elif operation is not None and media_type == OCTETS and not response.content:
            # openapi-core takes an empty body for a missing one, but zero octets (an empty
            # file) are a fine octet stream: the status and media type must be documented.
            template, _ = operation
            responses = self.checker.document["paths"][template][request.method.lower()]
            content = responses["responses"].get(str(response.status_code), {}).get("content")
            assert OCTETS in (content or {}), f"{path} → {response.status_code}: {OCTETS}?"
        else:
            self.checker.check(response, path)
        if response.status_code >= 400 and path != "/health":
            assert media_type == PROBLEM_JSON, (response.status_code, media_type, text[:2000])
            body = response.json()
            assert body["status"] == response.status_code, body
            assert body["kind"], body
            if response.status_code == 401:
                assert response.headers.get("www-authenticate", "").startswith("Bearer"), (
                    response.headers
                )

    async def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self.request("GET", url, **kwargs)

    async def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self.request("POST", url, **kwargs)

    async def put(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self.request("PUT", url, **kwargs)

    async def delete(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self.request("DELETE", url, **kwargs)

    async def json(self, method: str, url: str, expect: int = 200, **kwargs: Any) -> Any:
        """The JSON body of a request that must answer ``expect``."""
        response = await self.request(method, url, expect=expect, **kwargs)
        assert response.headers["content-type"].startswith("application/json"), response.headers
        return response.json()

    async def problem(
        self, method: str, url: str, status: int, kind: str, **kwargs: Any
    ) -> dict[str, Any]:
        """The problem document of a request that must fail with ``status`` and ``kind``."""
        response = await self.request(method, url, expect=status, **kwargs)
        body: dict[str, Any] = response.json()
        assert body["kind"] == kind, f"expected kind {kind!r}: {body}"
        assert body["type"], body
        assert body["title"], body
        assert isinstance(body["detail"], str), body
        return body

    # ------------------------------------------------------------------ executions

    async def run(self, code: str, language: str = "python", **params: Any) -> dict[str, Any]:
        """``POST /api/v1/execute``: the run's result."""
        body = {"language": language, "code": code, **params}
        result: dict[str, Any] = await self.json("POST", "/api/v1/execute", json=body)
        return result

    async def submit(self, code: str, language: str = "python", **params: Any) -> str:
        """``POST /api/v1/execute/async``: the new execution's id."""
        body = {"language": language, "code": code, **params}
        response = await self.post("/api/v1/execute/async", json=body, expect=202)
        accepted = response.json()
        assert accepted["status"] == "queued", accepted
        assert response.headers["location"] == accepted["statusUrl"], response.headers
        execution_id: str = accepted["executionId"]
        assert accepted["statusUrl"] == f"/api/v1/executions/{execution_id}", accepted
        return execution_id

    async def execution(self, execution_id: str) -> dict[str, Any]:
        record: dict[str, Any] = await self.json("GET", f"/api/v1/executions/{execution_id}")
        assert record["executionId"] == execution_id, record
        return record

    async def wait_for(
        self, execution_id: str, statuses: frozenset[str] = FINISHED, timeout: float = 60
    ) -> dict[str, Any]:
        """Poll the record until its status is one of ``statuses``."""
        deadline = time.monotonic() + timeout
        while True:
            record = await self.execution(execution_id)
            if record["status"] in statuses:
                return record
            assert time.monotonic() < deadline, (
                f"execution {execution_id} still {record['status']!r} after {timeout:g}s "
                f"(waiting for {sorted(statuses)}): {record}"
            )
            await asyncio.sleep(0.1)


@asynccontextmanager
async def serving(
    docker: aiodocker.Docker, env: dict[str, str], instance: str | None = None
) -> AsyncIterator[tuple[ServerProcess, Rest]]:
    """A server process with these settings and a REST client on it; stopped (and checked
    to leave nothing behind) afterwards."""
    server = ServerProcess(env, instance)
    try:
        await server.start()
        rest = await Rest.open(server.http_url)
        try:
            yield server, rest
        finally:
            await rest.aclose()
    finally:
        await stop_and_check(docker, server)
