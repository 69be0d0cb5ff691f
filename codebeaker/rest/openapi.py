"""``GET /openapi.json``: FastAPI's document of the routes, plus the request models.

Request bodies are validated by our own models with the server's settings in the context
(FastAPI's body parsing cannot pass one), so their schemas are added here from the same
models, and each route points at its body with ``body_of``.
"""

from __future__ import annotations

from typing import Any

from codebeaker_client.models import (
    COMMAND,
    CancelBody,
    CreateSessionRequest,
    Problem,
    RunRequest,
)
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import TypeAdapter

from codebeaker.api.live import PendingRunRequest

__all__ = ["BINARY", "body_of", "install_openapi", "problems"]

REF = "#/components/schemas/{model}"
BODIES: dict[str, TypeAdapter[Any]] = {
    "CreateSessionRequest": TypeAdapter(CreateSessionRequest),
    "RunRequest": TypeAdapter(RunRequest),
    "Command": COMMAND,
    "PendingRunRequest": TypeAdapter(PendingRunRequest),
    "CancelBody": TypeAdapter(CancelBody),
}
SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer"},
    "apiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
}
BINARY = {"type": "string", "contentMediaType": "application/octet-stream"}


def body_of(name: str, *, required: bool = True) -> dict[str, Any]:
    """``openapi_extra`` of a route whose JSON body is the model registered as ``name``."""
    assert name in BODIES, name
    schema = {"$ref": REF.format(model=name)}
    content = {"application/json": {"schema": schema}}
    return {"requestBody": {"required": required, "content": content}}


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses`` entries of the error statuses a route may answer."""
    content = {"application/problem+json": {"schema": {"$ref": REF.format(model="Problem")}}}
    return {
        status: {"description": "A problem document", "content": content} for status in statuses
    }


def install_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                openapi_version="3.1.0",
                description=app.description,
                routes=app.routes,
            )
            schemas = document.setdefault("components", {}).setdefault("schemas", {})
            for name, adapter in BODIES.items():
                schemas.update(_flattened(name, adapter.json_schema(ref_template=REF)))
            problem = Problem.model_json_schema(mode="serialization", ref_template=REF)
            schemas.update(_flattened("Problem", problem))
            document["components"]["securitySchemes"] = SECURITY_SCHEMES
            # Needed only when the server has CODEBEAKER_API_KEY; /health is always open.
            document["security"] = [{name: []} for name in SECURITY_SCHEMES]
            document["paths"]["/health"]["get"]["security"] = []
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _flattened(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    definitions = schema.pop("$defs", {})
    return {**definitions, name: schema}
