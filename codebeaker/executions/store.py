"""The durable record of asynchronous executions: one SQLite file under the data directory.

Every change of status is committed (``synchronous=FULL``) before the work it announces
begins, so after a crash the file tells which executions never started (they run now) and
which were running (they are marked failed, never run twice). The file is held in exclusive
mode: a second server of the same instance cannot open it. A request's source is kept only
until the execution starts; finished records are pruned and their space reused. The same
file and connection hold the session records (``sessions/records.py``).
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import aiosqlite
from codebeaker_client.models import (
    ExecutionError,
    ExecutionRecord,
    ExecutionStatus,
    ExecutionSummary,
    RunRequest,
    RunResult,
)

from codebeaker.constants import LOCAL_TENANT

__all__ = ["ExecutionStore", "StoreInUseError"]

PRAGMAS = (
    "PRAGMA auto_vacuum=INCREMENTAL",  # before the first table: freed pages can be returned
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=FULL",  # a committed "running" survives power loss: never run twice
    "PRAGMA locking_mode=EXCLUSIVE",  # one server per file
)
SCHEMA = """
CREATE TABLE IF NOT EXISTS executions (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    language TEXT NOT NULL,
    request TEXT,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    result TEXT,
    error TEXT
);
CREATE INDEX IF NOT EXISTS executions_by_status ON executions (status, created_at);
CREATE INDEX IF NOT EXISTS executions_by_finish ON executions (finished_at);
"""
SUMMARY = "id, status, language, created_at, started_at, finished_at, error"
TENANT_COLUMN = f"ALTER TABLE executions ADD COLUMN tenant TEXT NOT NULL DEFAULT '{LOCAL_TENANT}'"
"""Whose execution it is; records from before tenants were the local tenant's."""


class StoreInUseError(RuntimeError):
    """Another process holds the file: two servers share one instance name."""


def _moment(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


def _summary(row: aiosqlite.Row) -> ExecutionSummary:
    return ExecutionSummary(
        execution_id=row[0],
        status=row[1],
        language=row[2],
        created_at=datetime.fromtimestamp(row[3], UTC),
        started_at=_moment(row[4]),
        finished_at=_moment(row[5]),
        error=None if row[6] is None else ExecutionError.model_validate_json(row[6]),
    )


class ExecutionStore:
    """Opened at start-up, closed at shutdown; every method is one short transaction."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: aiosqlite.Connection | None = None

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise RuntimeError("the execution store is not open")
        return self._db

    @property
    def is_open(self) -> bool:
        return self._db is not None

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        db = await aiosqlite.connect(self.path, timeout=0.5)
        try:
            for pragma in PRAGMAS:
                await db.execute(pragma)
            await db.executescript(SCHEMA)  # takes the exclusive lock
            columns = await db.execute_fetchall("PRAGMA table_info(executions)")
            if "tenant" not in {column[1] for column in columns}:
                await db.execute(TENANT_COLUMN)
            await db.commit()
            # session records hold each session's env: readable by the server's user only
            # (SQLite gives the -wal and -shm files the same mode)
            self.path.chmod(0o600)
        except sqlite3.OperationalError as exc:
            await db.close()
            raise StoreInUseError(
                f"{self.path} is in use ({exc}): is another server running with this"
                " CODEBEAKER_INSTANCE?"
            ) from exc
        self._db = db

    async def close(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None

    async def add(
        self, execution_id: str, language: str, request: RunRequest, tenant: str = LOCAL_TENANT
    ) -> ExecutionRecord:
        now = datetime.now(UTC)
        await self.db.execute(
            "INSERT INTO executions (id, status, language, request, created_at, tenant)"
            " VALUES (?, 'queued', ?, ?, ?, ?)",
            (execution_id, language, request.model_dump_json(), now.timestamp(), tenant),
        )
        await self.db.commit()
        return ExecutionRecord(
            execution_id=execution_id, status="queued", language=language, created_at=now
        )

    async def get(self, execution_id: str, tenant: str = LOCAL_TENANT) -> ExecutionRecord | None:
        """The record, if ``tenant`` submitted it."""
        async with self.db.execute(
            f"SELECT {SUMMARY}, result FROM executions"  # noqa: S608 - fixed columns
            " WHERE id = ? AND tenant = ?",
            (execution_id, tenant),
        ) as cursor:
            row = await cursor.fetchone()
        if row is None:
            return None
        result = None if row[7] is None else RunResult.model_validate_json(row[7])
        return ExecutionRecord(**dict(_summary(row)), result=result)

    async def select(
        self, status: ExecutionStatus | None, limit: int, tenant: str = LOCAL_TENANT
    ) -> list[ExecutionSummary]:
        """The tenant's, newest first, without results (a list of outputs would be unbounded)."""
        where, args = (" AND status = ?", [status]) if status else ("", [])
        async with self.db.execute(
            f"SELECT {SUMMARY} FROM executions WHERE tenant = ?{where}"  # noqa: S608 - fixed
            " ORDER BY created_at DESC, rowid DESC LIMIT ?",
            (tenant, *args, limit),
        ) as cursor:
            rows = await cursor.fetchall()
        return [_summary(row) for row in rows]

    async def queued(self) -> list[str]:
        """Ids of the executions that never started, oldest first (resumed after a restart)."""
        async with self.db.execute(
            "SELECT id FROM executions WHERE status = 'queued' ORDER BY created_at, rowid"
        ) as cursor:
            rows = await cursor.fetchall()
        return [row[0] for row in rows]

    async def start(self, execution_id: str) -> str | None:
        """queued → running, committed; the request as stored (JSON), or None when it is no
        longer queued (cancelled meanwhile)."""
        # fetched whole in one call: a statement left open would make another
        # coroutine's commit fail ("SQL statements in progress")
        rows = await self.db.execute_fetchall(
            "UPDATE executions SET status = 'running', started_at = ?"
            " WHERE id = ? AND status = 'queued' RETURNING request",
            (datetime.now(UTC).timestamp(), execution_id),
        )
        await self.db.commit()
        return next((str(row[0]) for row in rows), None)

    async def finish(
        self,
        execution_id: str,
        status: ExecutionStatus,
        *,
        result: RunResult | None = None,
        error: ExecutionError | None = None,
    ) -> bool:
        """→ a final status (the request is dropped); False when it had already ended."""
        cursor = await self.db.execute(
            "UPDATE executions SET status = ?, finished_at = ?, result = ?, error = ?,"
            " request = NULL WHERE id = ? AND status IN ('queued', 'running')",
            (
                status,
                datetime.now(UTC).timestamp(),
                None if result is None else result.model_dump_json(),
                None if error is None else error.model_dump_json(),
                execution_id,
            ),
        )
        await self.db.commit()
        return cursor.rowcount == 1

    async def fail_interrupted(self, error: ExecutionError) -> int:
        """Running when the server stopped: failed, so that nothing runs twice."""
        cursor = await self.db.execute(
            "UPDATE executions SET status = 'failed', finished_at = ?, error = ?,"
            " request = NULL WHERE status = 'running'",
            (datetime.now(UTC).timestamp(), error.model_dump_json()),
        )
        await self.db.commit()
        return cursor.rowcount

    async def prune(self, older_than: datetime) -> int:
        """Forget executions that finished before ``older_than``; give the space back."""
        cursor = await self.db.execute(
            "DELETE FROM executions WHERE finished_at IS NOT NULL AND finished_at < ?",
            (older_than.timestamp(),),
        )
        await self.db.commit()
        if cursor.rowcount:  # run as a script: a plain execute frees a single page
            await self.db.executescript("PRAGMA incremental_vacuum")
        return cursor.rowcount
