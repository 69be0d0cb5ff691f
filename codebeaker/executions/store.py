"""The durable record of asynchronous executions: one SQLite file under the data directory.

Every change of status is committed before the work it announces begins, so after a crash
the file tells which executions never started (they run now) and which were running (they
are marked failed, never run twice).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import aiosqlite

from codebeaker.api import ErrorData, ExecutionRecord, ExecutionStatus, RunRequest, RunResult

__all__ = ["ExecutionStore", "QueuedExecution"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS executions (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    language TEXT NOT NULL,
    request TEXT NOT NULL,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    result TEXT,
    error TEXT
);
CREATE INDEX IF NOT EXISTS executions_by_status ON executions (status, created_at);
CREATE INDEX IF NOT EXISTS executions_by_finish ON executions (finished_at);
"""
COLUMNS = "id, status, language, created_at, started_at, finished_at, result, error"

QueuedExecution = tuple[str, str]
"""An execution that never started: its id and its request as stored (JSON)."""


def _moment(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


def _record(row: aiosqlite.Row) -> ExecutionRecord:
    return ExecutionRecord(
        execution_id=row[0],
        status=row[1],
        language=row[2],
        created_at=datetime.fromtimestamp(row[3], UTC),
        started_at=_moment(row[4]),
        finished_at=_moment(row[5]),
        result=None if row[6] is None else RunResult.model_validate_json(row[6]),
        error=None if row[7] is None else ErrorData.model_validate_json(row[7]),
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

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = await aiosqlite.connect(self.path)
        await self._db.execute("PRAGMA journal_mode=WAL")
        await self._db.execute("PRAGMA synchronous=NORMAL")
        await self._db.executescript(SCHEMA)
        await self._db.commit()

    async def close(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None

    async def add(self, execution_id: str, language: str, request: RunRequest) -> ExecutionRecord:
        now = datetime.now(UTC)
        await self.db.execute(
            "INSERT INTO executions (id, status, language, request, created_at)"
            " VALUES (?, 'queued', ?, ?, ?)",
            (execution_id, language, request.model_dump_json(), now.timestamp()),
        )
        await self.db.commit()
        return ExecutionRecord(
            execution_id=execution_id, status="queued", language=language, created_at=now
        )

    async def get(self, execution_id: str) -> ExecutionRecord | None:
        async with self.db.execute(
            f"SELECT {COLUMNS} FROM executions WHERE id = ?",  # noqa: S608 - fixed columns
            (execution_id,),
        ) as cursor:
            row = await cursor.fetchone()
        return None if row is None else _record(row)

    async def select(self, status: ExecutionStatus | None, limit: int) -> list[ExecutionRecord]:
        where, args = ("WHERE status = ?", [status]) if status else ("", [])
        async with self.db.execute(
            f"SELECT {COLUMNS} FROM executions {where}"  # noqa: S608 - fixed columns
            " ORDER BY created_at DESC, rowid DESC LIMIT ?",
            (*args, limit),
        ) as cursor:
            rows = await cursor.fetchall()
        return [_record(row) for row in rows]

    async def queued(self) -> list[QueuedExecution]:
        """Executions that never started, oldest first (to resume after a restart)."""
        async with self.db.execute(
            "SELECT id, request FROM executions WHERE status = 'queued' ORDER BY created_at, rowid"
        ) as cursor:
            rows = await cursor.fetchall()
        return [(row[0], row[1]) for row in rows]

    async def start(self, execution_id: str) -> bool:
        """queued → running; False when it is no longer queued (cancelled meanwhile)."""
        return await self._move(
            execution_id, "running", "status = 'queued'", started_at=datetime.now(UTC)
        )

    async def finish(
        self,
        execution_id: str,
        status: ExecutionStatus,
        *,
        result: RunResult | None = None,
        error: ErrorData | None = None,
    ) -> bool:
        """→ a final status; False when it had already ended."""
        return await self._move(
            execution_id,
            status,
            "status IN ('queued', 'running')",
            finished_at=datetime.now(UTC),
            result=None if result is None else result.model_dump_json(by_alias=True),
            error=None if error is None else error.model_dump_json(by_alias=True),
        )

    async def _move(self, execution_id: str, status: str, condition: str, **values: object) -> bool:
        assignments = ", ".join(f"{name} = ?" for name in values)
        args = [
            value.timestamp() if isinstance(value, datetime) else value for value in values.values()
        ]
        cursor = await self.db.execute(
            f"UPDATE executions SET status = ?, {assignments}"  # noqa: S608 - names are ours
            f" WHERE id = ? AND {condition}",
            (status, *args, execution_id),
        )
        await self.db.commit()
        return cursor.rowcount == 1

    async def fail_interrupted(self, error: ErrorData) -> int:
        """Running when the server stopped: failed, so that nothing runs twice."""
        cursor = await self.db.execute(
            "UPDATE executions SET status = 'failed', finished_at = ?, error = ?"
            " WHERE status = 'running'",
            (datetime.now(UTC).timestamp(), error.model_dump_json(by_alias=True)),
        )
        await self.db.commit()
        return cursor.rowcount

    async def prune(self, older_than: datetime) -> int:
        """Forget executions that finished before ``older_than``."""
        cursor = await self.db.execute(
            "DELETE FROM executions WHERE finished_at IS NOT NULL AND finished_at < ?",
            (older_than.timestamp(),),
        )
        await self.db.commit()
        return cursor.rowcount
