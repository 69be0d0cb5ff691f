"""Errors as RFC 9457 problem documents, and request bodies read within their limits.

``ProblemRoute`` makes every failure inside a route (a service error, invalid input, a bug)
one ``application/problem+json`` answer from ``codebeaker.errors``'s table, and leaves one
line per request in the audit log (but for ``/health``, which probes call all day).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Coroutine
from typing import Any

from codebeaker_client.models import ErrorData, Problem, WireModel
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Match

from codebeaker.api.wire import dumps, field_errors
from codebeaker.audit import AUDIT
from codebeaker.auth import tenant_of
from codebeaker.errors import Described, describe, problem_for
from codebeaker.exceptions import (
    InvalidParamsError,
    MalformedRequestError,
    PayloadTooLargeError,
)

__all__ = [
    "PROBLEM_JSON",
    "ProblemRoute",
    "audit_note",
    "http_problem",
    "problem_response",
    "read_body",
    "read_json",
    "wire_response",
]

PROBLEM_JSON = "application/problem+json"
HTTP_KINDS = {404: "not_found", 405: "method_not_allowed"}
UNAUDITED = frozenset({"/health"})


class WireJSONResponse(JSONResponse):
    """Rendered like every other door's JSON (``api.wire.dumps``)."""

    def render(self, content: Any) -> bytes:
        return dumps(content).encode("ascii")


def wire_response(model: WireModel, status_code: int = 200, **headers: str) -> JSONResponse:
    return WireJSONResponse(model.to_wire(), status_code=status_code, headers=headers or None)


def problem_response(exc: BaseException) -> JSONResponse:
    return _described_response(_describe(exc))


def _describe(exc: BaseException) -> Described:
    if isinstance(exc, RequestValidationError):  # FastAPI's own: path and query parameters
        exc = InvalidParamsError(field_errors(exc.errors()))
    return describe(exc)


def _described_response(described: Described) -> JSONResponse:
    body = problem_for(described.status, described.message, described.data)
    headers = {}
    if body.retry_after is not None:
        headers["Retry-After"] = str(max(1, round(body.retry_after)))
    if described.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="codebeaker"'
    return _problem_json(body, headers)


def _problem_json(body: Problem, headers: dict[str, str]) -> JSONResponse:
    return WireJSONResponse(
        body.to_wire(), status_code=body.status, headers=headers, media_type=PROBLEM_JSON
    )


async def http_problem(request: Request, exc: Exception) -> Response:
    """Starlette's own errors (unknown path, wrong method) in the same shape."""
    assert isinstance(exc, HTTPException)
    data = ErrorData(kind=HTTP_KINDS.get(exc.status_code, "http_error"))
    body = problem_for(exc.status_code, str(exc.detail), data)
    headers = dict(exc.headers or {})
    if exc.status_code == 405:  # Starlette names only the first route that matched the path
        headers["Allow"] = ", ".join(sorted(_allowed_methods(request)))
    return _problem_json(body, headers)


def _allowed_methods(request: Request) -> set[str]:
    methods: set[str] = set()
    for route in request.app.routes:
        match, _ = route.matches(request.scope)
        if match is Match.PARTIAL:  # the path matched, the method did not
            methods |= getattr(route, "methods", None) or set()
    return methods


def audit_note(
    request: Request, *, session_id: str | None = None, command: str | None = None
) -> None:
    """What the audit line of this request names beyond its route: the session a route
    created, the type of command it runs."""
    if session_id is not None:
        request.state.audit_session = session_id
    if command is not None:
        request.state.audit_command = command


class ProblemRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        audited = self.path not in UNAUDITED

        async def answer(request: Request) -> Response:
            started = time.monotonic()
            try:
                response = await handler(request)
                outcome = "ok" if response.status_code < 400 else f"http_{response.status_code}"
            except Exception as exc:  # one problem document, never a traceback
                described = _describe(exc)
                response = _described_response(described)
                outcome = described.data.kind
            if audited:
                state = request.state
                AUDIT.record(
                    tenant=tenant_of(request.scope).name,
                    door="rest",
                    method=f"{request.method} {self.path}",
                    session_id=request.path_params.get("sessionId")
                    or getattr(state, "audit_session", None),
                    command=getattr(state, "audit_command", None),
                    outcome=outcome,
                    started=started,
                )
            return response

        return answer


async def read_body(request: Request, limit: int, what: str = "body") -> bytes:
    """The whole body, refused (413) as soon as it passes ``limit`` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise PayloadTooLargeError(f"{what}_size", limit)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise PayloadTooLargeError(f"{what}_size", limit)
    return bytes(body)


async def read_json(request: Request, limit: int, *, empty: Any = None) -> Any:
    """The body as JSON; with ``empty`` given, an empty body (no bytes) reads as it."""
    try:
        body = await read_body(request, limit)
        if not body and empty is not None:
            return empty
        return json.loads(body)
    except ValueError as exc:  # includes UnicodeDecodeError
        raise MalformedRequestError(f"the request body is not valid JSON: {exc}") from None
    except RecursionError:
        raise MalformedRequestError("the request body is nested too deeply") from None
