"""The audit log (``CODEBEAKER_AUDIT_LOG``): one JSON line per request, never its content.

Each line says when, which tenant, which door and method (a JSON-RPC method, a REST route's
template, an interactive socket's path), which session, which command type, and how it
ended (``ok`` or the error's kind). Code, arguments, environment, file content and input
never appear. Lines go through a bounded queue to a writer thread (the standard library's
``QueueListener``) so a slow disk never slows a call; when the queue is full, lines are
dropped and counted. The file rotates at ``ROTATE_BYTES``, keeping ``BACKUPS`` old ones.
"""

from __future__ import annotations

import logging
import logging.handlers
import queue
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from loguru import logger
from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

__all__ = ["AUDIT", "AuditLog", "AuditRecord", "Door"]

QUEUE_LINES = 10_000
ROTATE_BYTES = 100 * 1024 * 1024
BACKUPS = 5

Door = Literal["jsonrpc", "rest", "live", "http", "websocket"]
"""``http``/``websocket``: refused before any door saw the request (key or rate)."""


class AuditRecord(BaseModel):
    """One line of the audit log."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    time: datetime
    tenant: str | None
    """None when the key named no tenant."""
    door: Door
    method: str
    session_id: str | None = None
    command: str | None = None
    """A command's ``type`` (``exec``, ``write_file`` …), ``run_code``, or a run's language."""
    outcome: str
    """``ok``, or the error's kind (``session_not_found``, ``limit_exceeded`` …)."""
    duration_ms: int | None = None


class AuditLog:
    """Off until ``open``; ``record`` never blocks and never raises."""

    def __init__(self) -> None:
        self._queue: queue.Queue[logging.LogRecord] | None = None
        self._listener: logging.handlers.QueueListener | None = None
        self.dropped = 0

    @property
    def enabled(self) -> bool:
        return self._queue is not None

    def open(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.handlers.RotatingFileHandler(
            path, maxBytes=ROTATE_BYTES, backupCount=BACKUPS, encoding="utf-8"
        )
        self._queue = queue.Queue(QUEUE_LINES)
        self._listener = logging.handlers.QueueListener(self._queue, handler)
        self._listener.start()

    def close(self) -> None:
        """Write what is queued, then stop."""
        listener, self._listener, self._queue = self._listener, None, None
        if listener is not None:
            listener.stop()
            for handler in listener.handlers:
                handler.close()
        if self.dropped:
            logger.warning("the audit log dropped {} line(s): its writer fell behind", self.dropped)
            self.dropped = 0

    def record(
        self,
        *,
        tenant: str | None,
        door: Door,
        method: str,
        outcome: str,
        session_id: str | None = None,
        command: str | None = None,
        started: float | None = None,
    ) -> None:
        """One request; ``started`` (``time.monotonic()``) gives its duration."""
        target = self._queue
        if target is None:
            return
        line = AuditRecord(
            time=datetime.now(UTC),
            tenant=tenant,
            door=door,
            method=method[:200],
            session_id=None if session_id is None else session_id[:256],
            command=command,
            outcome=outcome,
            duration_ms=None if started is None else round((time.monotonic() - started) * 1000),
        ).model_dump_json(by_alias=True)
        try:
            target.put_nowait(logging.makeLogRecord({"msg": line, "levelno": logging.INFO}))
        except queue.Full:
            self.dropped += 1


AUDIT = AuditLog()
"""The process's audit log, opened by the app's lifespan when ``CODEBEAKER_AUDIT_LOG`` is set."""
