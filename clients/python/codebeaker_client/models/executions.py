"""Asynchronous one-shot runs (``POST /api/v1/execute/async``) and their stored records."""

from __future__ import annotations

from typing import Literal

from codebeaker_client.models.results import RunResult
from codebeaker_client.models.wire import Timestamp, WireModel

__all__ = [
    "ExecutionAccepted",
    "ExecutionError",
    "ExecutionList",
    "ExecutionQuery",
    "ExecutionRecord",
    "ExecutionStatus",
    "ExecutionSummary",
]

ExecutionStatus = Literal["queued", "running", "completed", "failed", "cancelled"]


class ExecutionAccepted(WireModel):
    execution_id: str
    status: Literal["queued"] = "queued"
    status_url: str
    """Where the record can be read (also the ``Location`` header)."""


class ExecutionError(WireModel):
    """Why an execution ``failed``: the error kind of either door, and what happened."""

    kind: str
    message: str


class ExecutionSummary(WireModel):
    """One execution without its output (the rows of ``GET /api/v1/executions``)."""

    execution_id: str
    status: ExecutionStatus
    """``completed``: the program ran (``result.exitCode`` says how it ended); ``failed``:
    it could not be run (``error.kind`` says why); ``cancelled``: a client stopped it."""
    language: str
    created_at: Timestamp
    started_at: Timestamp | None = None
    finished_at: Timestamp | None = None
    error: ExecutionError | None = None


class ExecutionRecord(ExecutionSummary):
    """One execution with its result, once it has one."""

    result: RunResult | None = None


class ExecutionList(WireModel):
    executions: list[ExecutionSummary]
    """Newest first; each without its output (read one record for that)."""


class ExecutionQuery(WireModel):
    status: ExecutionStatus | None = None
    limit: int = 100
