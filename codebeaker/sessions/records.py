"""Session records: what the next server of this instance needs to adopt a live session.

They live in the execution store's SQLite file (one connection, its exclusive lock, WAL,
``synchronous=FULL``). A record is written when the session is created and deleted when it
is closed; its clocks and execution count change on every command, so those are written in
batches: at most one transaction per ``FLUSH_SECONDS`` for all sessions together, never on
a command's own path. A ``kill -9`` loses at most that much of them.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Literal

from codebeaker_client.models import SessionConfig
from loguru import logger
from pydantic import ValidationError

if TYPE_CHECKING:  # the executions package imports the sessions package
    from codebeaker.executions.store import ExecutionStore

__all__ = ["FLUSH_SECONDS", "SessionRecord", "SessionRecords"]

FLUSH_SECONDS = 1.0
SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    language TEXT NOT NULL,
    config TEXT NOT NULL,
    container_id TEXT NOT NULL,
    driver TEXT NOT NULL,
    created_at REAL NOT NULL,
    last_activity REAL NOT NULL,
    execution_count INTEGER NOT NULL
);
"""
COLUMNS = "id, tenant, language, config, container_id, driver, created_at, last_activity,"
COLUMNS += " execution_count"

DriverKind = Literal["agent", "exec"]


@dataclass(frozen=True)
class SessionRecord:
    session_id: str
    tenant: str
    language: str
    config: SessionConfig
    container_id: str
    driver: DriverKind
    """The driver it was served by: an exec-driver container lacks the agent's capabilities."""
    created_at: datetime
    last_activity: datetime
    execution_count: int

    def expiry_reason(self, now: datetime) -> str | None:
        """Why it must not be adopted: its lifetime or idle timeout ran out meanwhile."""
        config = self.config
        if now - self.created_at >= timedelta(minutes=config.max_lifetime_minutes):
            return "max lifetime reached"
        if now - self.last_activity >= timedelta(minutes=config.idle_timeout_minutes):
            return "idle timeout"
        return None


def _config_json(config: SessionConfig) -> str:
    """The config with its ``env`` (left out of every wire dump, but commands need it)."""
    return json.dumps({**config.model_dump(mode="json", by_alias=True), "env": config.env})


def _row(record: SessionRecord) -> tuple[object, ...]:
    return (
        record.session_id,
        record.tenant,
        record.language,
        _config_json(record.config),
        record.container_id,
        record.driver,
        record.created_at.timestamp(),
        record.last_activity.timestamp(),
        record.execution_count,
    )


def _record(row: tuple[object, ...]) -> SessionRecord | None:
    """None for a row this server cannot read (written by another version)."""
    try:
        config = SessionConfig.model_validate_json(str(row[3]))
        driver: DriverKind = "agent" if row[5] == "agent" else "exec"
        return SessionRecord(
            session_id=str(row[0]),
            tenant=str(row[1]),
            language=str(row[2]),
            config=config,
            container_id=str(row[4]),
            driver=driver,
            created_at=datetime.fromtimestamp(float(str(row[6])), UTC),
            last_activity=datetime.fromtimestamp(float(str(row[7])), UTC),
            execution_count=int(str(row[8])),
        )
    except (ValidationError, ValueError) as exc:
        logger.warning("session record {} unreadable: {}", row[0], exc)
        return None


class SessionRecords:
    """The sessions table; opened after the store, flushed and left before it closes."""

    def __init__(self, store: ExecutionStore) -> None:
        self._store = store
        self._pending: dict[str, tuple[float, int]] = {}
        """Per session: last activity and execution count not written yet."""
        self._flusher: asyncio.Task[None] | None = None

    async def open(self) -> None:
        await self._store.db.executescript(SCHEMA)
        await self._store.db.commit()

    async def all(self) -> list[SessionRecord | tuple[str, str]]:
        """Every record; an unreadable one as ``(session id, container id)`` only."""
        rows = await self._store.db.execute_fetchall(f"SELECT {COLUMNS} FROM sessions")  # noqa: S608
        return [_record(tuple(row)) or (str(row[0]), str(row[4])) for row in rows]

    async def add(self, record: SessionRecord) -> None:
        """A new session; should the write fail, it works on, but cannot be adopted."""
        if not self._store.is_open:  # a service that was never started (unit tests)
            return
        try:
            await self._store.db.execute(
                f"INSERT OR REPLACE INTO sessions ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",  # noqa: S608
                _row(record),
            )
            await self._store.db.commit()
        except (sqlite3.Error, ValueError) as exc:
            logger.warning("session {} not recorded: {}", record.session_id, exc)

    async def forget(self, session_id: str) -> None:
        """Closed; a record left by a failed write names a container that is gone by the
        next start, and is dropped then."""
        self._pending.pop(session_id, None)
        if not self._store.is_open:
            return
        try:
            await self._store.db.execute("DELETE FROM sessions WHERE id = ?", (session_id,))
            await self._store.db.commit()
        except (sqlite3.Error, ValueError) as exc:
            logger.warning("session {} record not deleted: {}", session_id, exc)

    def note(self, session_id: str, last_activity: datetime, execution_count: int) -> None:
        """Activity of a session: written with the others within ``FLUSH_SECONDS``."""
        self._pending[session_id] = (last_activity.timestamp(), execution_count)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_soon())

    async def _flush_soon(self) -> None:
        await asyncio.sleep(FLUSH_SECONDS)
        try:
            await self.flush()
        except Exception as exc:  # the next activity tries again; adoption loses a little
            logger.warning("session records not written: {}", exc)

    async def flush(self) -> None:
        """Write every pending change in one transaction (also at shutdown)."""
        if not self._pending or not self._store.is_open:
            return
        pending, self._pending = self._pending, {}
        await self._store.db.executemany(
            "UPDATE sessions SET last_activity = ?, execution_count = ? WHERE id = ?",
            [(moment, count, session_id) for session_id, (moment, count) in pending.items()],
        )
        await self._store.db.commit()

    async def close(self) -> None:
        """Write what is pending; the store is closed by its owner afterwards."""
        if self._flusher is not None:
            await self._flusher  # at most FLUSH_SECONDS; it never raises
        await self.flush()
