"""Checks that an answer of the server matches the OpenAPI document it serves (openapi-core).

``openapi-core`` validates a response given as objects of its protocols
(``openapi_core.protocols.Request``, ``SupportsPathPattern`` and ``Response``); the adapters
here make them of httpx's, in process (``httpx.ASGITransport``) or over the network alike::

    checker = OpenAPIChecker((await client.get("/openapi.json")).json())
    checker.check(await client.get("/api/v1/sessions"))

The operation is found by matching the path against the document's templates here (a last
``{path}`` parameter may hold slashes, which openapi-core's own finder does not allow). An
answer for a path or method the document does not have (404, 405) can only be a problem
document, and is checked against the ``Problem`` schema. Failures are ``AssertionError``s
that name the operation and quote the body.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import unquote

import httpx
from openapi_core import Config, OpenAPI
from openapi_core.datatypes import RequestParameters
from openapi_schema_validator import OAS31Validator
from werkzeug.datastructures import Headers, ImmutableMultiDict

__all__ = [
    "OCTETS",
    "PROBLEM_JSON",
    "HttpxOpenAPIRequest",
    "HttpxOpenAPIResponse",
    "OpenAPIChecker",
]

PROBLEM_JSON = "application/problem+json"
OCTETS = "application/octet-stream"
QUOTED = 2000
"""How much of a body a failure quotes."""


def _octets(data: bytes | str) -> str:
    """A file's bytes, as the ``type: string`` schema of a binary body can check them."""
    return data.decode("latin-1") if isinstance(data, bytes) else data


def _template_regex(template: str) -> re.Pattern[str]:
    """``/a/{x}/files/{path}``: each parameter one segment, but a last ``{path}`` the rest."""
    parts = re.split(r"(\{[^}]+\})", template)
    pattern = ""
    for index, part in enumerate(parts):
        if part.startswith("{") and part.endswith("}"):
            name = part[1:-1]
            last = index == len(parts) - 2 and not parts[-1]
            pattern += f"(?P<{name}>{'.+' if last and name == 'path' else '[^/]+'})"
        else:
            pattern += re.escape(part)
    return re.compile(pattern + "$")


class HttpxOpenAPIRequest:
    """An ``httpx.Request`` as openapi-core reads one, its operation already found."""

    def __init__(
        self,
        request: httpx.Request,
        path: str,
        path_pattern: str,
        path_parameters: dict[str, str],
    ) -> None:
        self._request = request
        self.path = path
        self.path_pattern = path_pattern
        self.parameters = RequestParameters(
            query=ImmutableMultiDict(request.url.params.multi_items()),
            header=Headers(request.headers.multi_items()),
            cookie=ImmutableMultiDict(),
            path=path_parameters,
        )

    @property
    def host_url(self) -> str:
        url = self._request.url
        return f"{url.scheme}://{url.netloc.decode('ascii')}"

    @property
    def method(self) -> str:
        return self._request.method.lower()

    @property
    def body(self) -> bytes | None:
        try:
            return self._request.content or None
        except httpx.RequestNotRead:  # a streamed body: gone once sent
            return None

    @property
    def content_type(self) -> str:
        return str(self._request.headers.get("content-type", "")).lower()


class HttpxOpenAPIResponse:
    """An ``httpx.Response`` as openapi-core reads one."""

    def __init__(self, response: httpx.Response) -> None:
        self._response = response

    @property
    def status_code(self) -> int:
        return self._response.status_code

    @property
    def content_type(self) -> str:
        return str(self._response.headers.get("content-type", "")).lower()

    @property
    def headers(self) -> Headers:
        return Headers(self._response.headers.multi_items())

    @property
    def data(self) -> bytes | None:
        return self._response.content or None


class OpenAPIChecker:
    """One served document; ``check`` raises ``AssertionError`` unless an answer fits it."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        config = Config(
            # what our models promise (extra="forbid"), also where a schema does not say so
            additional_properties_default_policy="forbid",
            # openapi-core reads only application/json (and vnd.api+json) as JSON
            extra_media_type_deserializers={PROBLEM_JSON: json.loads, OCTETS: _octets},
        )
        self.openapi = OpenAPI.from_dict(document, config=config)  # checks the document too
        self._templates = [(_template_regex(path), path) for path in document["paths"]]
        # the whole document as the root, so that "#/components/..." references resolve
        self._problem = OAS31Validator({**document, "$ref": "#/components/schemas/Problem"})

    def operation(self, path: str, method: str) -> tuple[str, dict[str, str]] | None:
        """The path template serving ``path`` with ``method``, and its parameters."""
        matches = []
        for regex, template in self._templates:
            found = regex.match(path)
            if found and method.lower() in self.document["paths"][template]:
                matches.append((template.count("{"), template, found.groupdict()))
        if not matches:
            return None
        _, template, parameters = min(matches)  # fewer parameters: the more concrete route
        return template, parameters

    def documents(self, path: str, method: str) -> bool:
        return self.operation(path, method) is not None

    def check(self, response: httpx.Response, path: str | None = None) -> None:
        """The status and body are documented for the operation, and the body fits its
        schema. ``path`` stands in for the request's (an alias, a raw request target)."""
        request = response.request
        if path is None:
            path = unquote(request.url.raw_path.split(b"?")[0].decode("ascii"))
        found = self.operation(path, request.method)
        if found is None:
            self.check_problem(response)
            return
        template, parameters = found
        try:
            self.openapi.validate_response(
                HttpxOpenAPIRequest(request, path, template, parameters),
                HttpxOpenAPIResponse(response),
            )
        except Exception as exc:
            raise AssertionError(
                f"{request.method} {path} → {response.status_code} does not match the OpenAPI "
                f"document ({template}): {exc!r} {exc.__cause__!r}; "
                f"body: {response.text[:QUOTED]}"
            ) from exc

    def check_problem(self, response: httpx.Response) -> None:
        """An answer of no documented operation: a 404 or 405 problem document."""
        request = response.request
        assert response.status_code in (404, 405), (
            f"{request.method} {request.url} is no documented operation, yet it answered "
            f"{response.status_code}: {response.text[:QUOTED]}"
        )
        media_type = response.headers.get("content-type", "").split(";")[0].strip()
        assert media_type == PROBLEM_JSON, (media_type, response.text[:QUOTED])
        errors = sorted(self._problem.iter_errors(response.json()), key=lambda e: str(e.path))
        assert not errors, f"not a Problem document: {[error.message for error in errors]}"
