"""Error bodies: the data of a JSON-RPC error and the REST problem document (RFC 9457).

Both carry the same ``kind`` and, for invalid input, the same ``errors`` list; the codes
and statuses are chosen in the server's ``codebeaker.errors`` and nowhere else.
"""

from __future__ import annotations

from pydantic import Field

from codebeaker_client.models.wire import WireModel, unset

__all__ = ["ErrorData", "FieldError", "Problem"]


class FieldError(WireModel):
    """One bad field: where it is, what is wrong, pydantic's error type."""

    loc: list[str | int]
    msg: str
    type: str


class ErrorData(WireModel):
    """What a client branches on; only ``kind`` is always there."""

    kind: str
    """Stable: ``session_not_found``, ``limit_exceeded``, ``invalid_params`` …"""
    errors: list[FieldError] | None = Field(None, exclude_if=unset)
    supported: list[str] | None = Field(None, exclude_if=unset)
    """With ``unsupported_language``: the names the server runs."""
    limit: str | None = Field(None, exclude_if=unset)
    """With ``limit_exceeded``: which limit."""
    retry_after: float | None = Field(None, exclude_if=unset)
    """Seconds after which trying again may succeed."""
    error_id: str | None = Field(None, exclude_if=unset)
    """With internal errors: the id the server's log repeats."""


class Problem(ErrorData):
    """``application/problem+json``: RFC 9457's members plus ours."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
