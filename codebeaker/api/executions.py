"""Asynchronous one-shot runs (``POST /api/v1/execute/async``) and their stored records."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from codebeaker.api.errors import ErrorData
from codebeaker.api.results import RunResult
from codebeaker.api.wire import Timestamp, WireModel

__all__ = [
    "FINISHED",
    "ExecutionAccepted",
    "ExecutionList",
    "ExecutionQuery",
    "ExecutionRecord",
    "ExecutionStatus",
]

ExecutionStatus = Literal["queued", "running", "completed", "failed", "cancelled"]
FINISHED: frozenset[ExecutionStatus] = frozenset({"completed", "failed", "cancelled"})


class ExecutionAccepted(WireModel):
    execution_id: str
    status: Literal["queued"] = "queued"
    status_url: str
    """Where the record can be read (also the ``Location`` header)."""


class ExecutionRecord(WireModel):
    execution_id: str
    status: ExecutionStatus
    """``completed``: the program ran (``result.exitCode`` says how it ended); ``failed``:
    it could not be run (``error.kind`` says why); ``cancelled``: a client stopped it."""
    language: str
    created_at: Timestamp
    started_at: Timestamp | None = None
    finished_at: Timestamp | None = None
    result: RunResult | None = None
    error: ErrorData | None = None


class ExecutionList(WireModel):
    executions: list[ExecutionRecord]
    """Newest first."""


class ExecutionQuery(WireModel):
    status: ExecutionStatus | None = None
    limit: int = Field(100, ge=1, le=1000)
