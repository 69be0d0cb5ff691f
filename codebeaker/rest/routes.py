"""The REST door (``shared/spec/REST.md``): each route parses a request model, calls the
service on its caller's tenant's behalf, and answers its result model; errors are problem
documents (``problems.py``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from codebeaker_client.models import (
    COMMAND,
    CancelBody,
    CancelRequest,
    CancelResult,
    CloseResult,
    CommandOutcome,
    CreateSessionRequest,
    ExecuteRequest,
    ExecutionAccepted,
    ExecutionList,
    ExecutionQuery,
    ExecutionRecord,
    ExecutionStatus,
    Health,
    LanguageList,
    RunRequest,
    RunResult,
    SessionInfo,
    SessionList,
    SessionSummary,
)
from codebeaker_client.models.commands import WriteFileResult
from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response
from pydantic import TypeAdapter

from codebeaker.api.live import PendingRunCreated, PendingRunRequest
from codebeaker.api.wire import parse
from codebeaker.auth import tenant_of
from codebeaker.rest.openapi import BINARY, body_of, problems
from codebeaker.rest.problems import ProblemRoute, audit_note, read_body, read_json, wire_response
from codebeaker.service import SandboxService
from codebeaker.tenants import Tenant

__all__ = ["router"]

router = APIRouter(route_class=ProblemRoute)

SessionId = Annotated[str, Path(alias="sessionId", min_length=1, max_length=256)]
ExecutionId = Annotated[str, Path(alias="executionId", min_length=1, max_length=256)]
FilePath = Annotated[str, Path(description="Relative to /workspace, or under /workspace or /tmp")]
EXECUTION_URL = "/api/v1/executions/{}"
LOCATED = {
    "headers": {"Location": {"description": "The new resource", "schema": {"type": "string"}}}
}
F = TypeVar("F", bound=Callable[..., Any])
M = TypeVar("M")
SESSION_URL = "/api/v1/sessions/{}"


def _service(request: Request) -> SandboxService:
    service: SandboxService = request.app.state.service
    return service


Service = Annotated[SandboxService, Depends(_service)]


def _tenant(request: Request) -> Tenant:
    return tenant_of(request.scope)


Caller = Annotated[Tenant, Depends(_tenant)]
"""The tenant whose key the request carries (the auth middleware found it)."""


# ------------------------------------------------------------------------------- health


@router.head("/health", include_in_schema=False)  # load balancers that probe with HEAD
@router.get("/health", response_model=Health, responses={503: {"model": Health}})
async def health(service: Service) -> Response:
    report = await service.health()
    return wire_response(report, 200 if report.status == "ok" else 503)


@router.get("/api/v1/languages", response_model=LanguageList, responses=problems(500))
async def languages(service: Service) -> Response:
    """The registry: names, aliases, and a sample program each (the playground's picker)."""
    return wire_response(service.languages())


# ---------------------------------------------------------------------------- one-shot runs


async def _body(request: Request, service: SandboxService, model: type[M] | TypeAdapter[M]) -> M:
    """The JSON body, read within the size limit and parsed as every door parses."""
    data = await read_json(request, service.settings.max_message_bytes)
    return parse(model, data, service.settings)


def aliased(method: str, path: str, alias: str, **options: Any) -> Callable[[F], F]:
    """A route and its seed-003 alias path: the same handler, the alias marked deprecated."""

    def register(handler: F) -> F:
        router.add_api_route(path, handler, methods=[method], **options)
        name = f"{handler.__name__}_seed003"
        router.add_api_route(
            alias, handler, methods=[method], deprecated=True, operation_id=name, **options
        )
        return handler

    return register


@aliased(
    "POST",
    "/api/v1/execute",
    "/api/execute",
    response_model=RunResult,
    openapi_extra=body_of("RunRequest"),
    responses=problems(400, 401, 413, 422, 429, 500, 503),
)
async def execute(request: Request, service: Service, tenant: Caller) -> Response:
    run = await _body(request, service, RunRequest)
    audit_note(request, command=run.language)
    return wire_response(await service.run(run, tenant=tenant))


@aliased(
    "POST",
    "/api/v1/execute/async",
    "/api/execute/async",
    status_code=202,
    response_model=ExecutionAccepted,
    openapi_extra=body_of("RunRequest"),
    responses={202: LOCATED, **problems(400, 401, 413, 422, 429, 500, 503)},
)
async def execute_async(request: Request, service: Service, tenant: Caller) -> Response:
    run = await _body(request, service, RunRequest)
    audit_note(request, command=run.language)
    record = await service.submit(run, tenant=tenant)
    url = EXECUTION_URL.format(record.execution_id)
    accepted = ExecutionAccepted(execution_id=record.execution_id, status_url=url)
    return wire_response(accepted, 202, Location=url)


@aliased(
    "GET",
    "/api/v1/executions/{executionId}",
    "/api/execute/status/{executionId}",
    response_model=ExecutionRecord,
    responses=problems(401, 404, 422, 429, 500),
)
async def execution(execution_id: ExecutionId, service: Service, tenant: Caller) -> Response:
    return wire_response(await service.execution(execution_id, tenant=tenant))


@router.delete(
    "/api/v1/executions/{executionId}",
    response_model=ExecutionRecord,
    responses=problems(401, 404, 409, 422, 429, 500),
)
async def cancel_execution(execution_id: ExecutionId, service: Service, tenant: Caller) -> Response:
    return wire_response(await service.cancel_execution(execution_id, tenant=tenant))


@router.get(
    "/api/v1/executions", response_model=ExecutionList, responses=problems(401, 422, 429, 500)
)
async def executions(
    service: Service,
    tenant: Caller,
    status: ExecutionStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Response:
    # Separate parameters, not a query model: other parameters (``apiKey``) must pass.
    query = ExecutionQuery(status=status, limit=limit)
    return wire_response(await service.executions(query, tenant=tenant))


# ------------------------------------------------------------------------------- sessions


@router.post(
    "/api/v1/sessions",
    status_code=201,
    response_model=SessionInfo,
    openapi_extra=body_of("CreateSessionRequest"),
    responses={201: LOCATED, **problems(400, 401, 413, 422, 429, 500, 503)},
)
async def create_session(request: Request, service: Service, tenant: Caller) -> Response:
    body = await _body(request, service, CreateSessionRequest)
    info = await service.create_session(body, tenant=tenant)
    audit_note(request, session_id=info.session_id)
    return wire_response(info, 201, Location=SESSION_URL.format(info.session_id))


@router.get("/api/v1/sessions", response_model=SessionList, responses=problems(401, 429, 500))
async def list_sessions(service: Service, tenant: Caller) -> Response:
    return wire_response(service.list_sessions(tenant=tenant))


@router.get(
    "/api/v1/sessions/{sessionId}",
    response_model=SessionSummary,
    responses=problems(401, 404, 410, 422, 429, 500),
)
async def get_session(session_id: SessionId, service: Service, tenant: Caller) -> Response:
    return wire_response(service.get_session(session_id, tenant=tenant))


@router.post(
    "/api/v1/sessions/{sessionId}/commands",
    response_model=CommandOutcome,
    openapi_extra=body_of("Command"),
    responses=problems(400, 401, 404, 410, 413, 422, 429, 500, 503),
)
async def run_command(
    session_id: SessionId, request: Request, service: Service, tenant: Caller
) -> Response:
    command = await _body(request, service, COMMAND)
    audit_note(request, command=command.type)
    execute = ExecuteRequest(session_id=session_id, command=command)
    outcome = await service.execute(execute, tenant=tenant)
    return wire_response(outcome)


@router.post(
    "/api/v1/sessions/{sessionId}/cancel",
    response_model=CancelResult,
    openapi_extra=body_of("CancelBody", required=False),
    responses=problems(400, 401, 404, 410, 413, 422, 429, 500),
)
async def cancel(
    session_id: SessionId, request: Request, service: Service, tenant: Caller
) -> Response:
    """Stop the session's running command (or, with ``requestId``, that call's, running or
    queued); an empty body is ``{}``."""
    data = await read_json(request, service.settings.max_message_bytes, empty={})
    body = parse(CancelBody, data, service.settings)
    cancel = CancelRequest(session_id=session_id, request_id=body.request_id)
    return wire_response(await service.cancel(cancel, tenant=tenant))


@router.put(
    "/api/v1/sessions/{sessionId}/files/{path:path}",
    response_model=WriteFileResult,
    openapi_extra={
        "requestBody": {"required": True, "content": {"*/*": {"schema": BINARY}}},
    },
    responses=problems(401, 403, 404, 409, 410, 413, 422, 429, 500, 503),
)
async def upload(
    session_id: SessionId, path: FilePath, request: Request, service: Service, tenant: Caller
) -> Response:
    audit_note(request, command="write_file")
    data = await read_body(request, service.settings.max_write_bytes)
    return wire_response(await service.write_file(session_id, path, data, tenant=tenant))


@router.get(
    "/api/v1/sessions/{sessionId}/files/{path:path}",
    response_class=Response,
    responses={
        200: {
            "description": "The file's bytes",
            "content": {"application/octet-stream": {"schema": BINARY}},
        },
        **problems(401, 403, 404, 409, 410, 413, 422, 429, 500, 503),
    },
)
async def download(
    session_id: SessionId, path: FilePath, request: Request, service: Service, tenant: Caller
) -> Response:
    audit_note(request, command="read_file")
    data = await service.read_file(session_id, path, tenant=tenant)
    return Response(data, media_type="application/octet-stream")


@router.delete(
    "/api/v1/sessions/{sessionId}",
    response_model=CloseResult,
    responses=problems(401, 404, 410, 422, 429, 500, 503),
)
async def close_session(session_id: SessionId, service: Service, tenant: Caller) -> Response:
    return wire_response(await service.close_session(session_id, tenant=tenant))


# ------------------------------------------------------------------ interactive runs (seed 004)


@router.post(
    "/session",
    status_code=201,
    response_model=PendingRunCreated,
    openapi_extra=body_of("PendingRunRequest"),
    responses=problems(400, 401, 413, 422, 429, 500),
)
async def create_pending_run(request: Request, service: Service, tenant: Caller) -> Response:
    """Framing B (RUN.md): the run starts when ``/ws/session/{sessionId}`` connects with
    the same key."""
    body = await _body(request, service, PendingRunRequest)
    audit_note(request, command=body.language)
    created = service.create_pending_run(body, tenant=tenant)
    return wire_response(created, 201)
