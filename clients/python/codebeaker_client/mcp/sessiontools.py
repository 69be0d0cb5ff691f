"""The session tools: ``session_create``, ``session_list`` and ``session_close``."""

from __future__ import annotations

from typing import Annotated, Any

from mcp.server.mcpserver import Context
from mcp_types import CallToolResult
from pydantic import Field

from codebeaker_client.mcp.errors import ToolError, translated
from codebeaker_client.mcp.models import (
    SessionCloseOutput,
    SessionCreateOutput,
    SessionListOutput,
    SessionRow,
)
from codebeaker_client.mcp.owners import create_session
from codebeaker_client.mcp.render import tool_result
from codebeaker_client.mcp.toolbase import ToolBase

__all__ = ["SessionTools"]


class SessionTools(ToolBase):
    """Starting, listing and closing sessions."""

    async def session_create(
        self,
        ctx: Context[Any, Any],
        language: Annotated[
            str, Field(description="python, python-data (numpy, pandas, matplotlib), ...")
        ] = "python",
        memory_limit_mb: Annotated[int | None, Field(ge=64, description="Memory (MiB).")] = None,
        cpu_limit: Annotated[float | None, Field(gt=0, description="CPU cores.")] = None,
        idle_timeout_minutes: Annotated[
            float | None, Field(gt=0, description="Closed after this long unused.")
        ] = None,
        env: Annotated[dict[str, str] | None, Field(description="Environment variables.")] = None,
        keep: Annotated[
            bool, Field(description="Leave it running after this client disconnects.")
        ] = False,
    ) -> Annotated[CallToolResult, SessionCreateOutput]:
        """Start a new sandbox session (another language, limits or a clean slate) and return
        its session_id, to pass to the other tools."""
        owner = None if keep else self._owners.identify(ctx)
        with translated():
            creating = self._client.create_session(
                language,
                memory_limit_mb=memory_limit_mb,
                cpu_limit=cpu_limit,
                idle_timeout_minutes=idle_timeout_minutes,
                env=env,
            )
            session = await create_session(creating)
            if owner is not None:
                await owner.adopt(session)
        output = SessionCreateOutput(
            session_id=session.id, language=session.language, closes_with_client=owner is not None
        )
        return tool_result(output)

    async def session_list(
        self, ctx: Context[Any, Any]
    ) -> Annotated[CallToolResult, SessionListOutput]:
        """List the CodeBeaker server's open sessions."""
        with translated():
            summaries = await self._client.list_sessions()
        owner = self._owners.identify(ctx)
        rows = [
            SessionRow(
                session_id=summary.session_id,
                language=summary.language,
                state=str(summary.state),
                created_at=summary.created_at.isoformat(),
                last_activity=summary.last_activity.isoformat(),
                idle_minutes=summary.idle_minutes,
                execution_count=summary.execution_count,
                this_client=owner is not None and owner.owns(summary.session_id),
            )
            for summary in summaries
        ]
        return tool_result(SessionListOutput(count=len(rows), sessions=rows))

    async def session_close(
        self,
        ctx: Context[Any, Any],
        session_id: Annotated[
            str | None, Field(description="The session to close; omit for this client's own.")
        ] = None,
    ) -> Annotated[CallToolResult, SessionCloseOutput]:
        """Close a session and remove its sandbox (files and state are gone)."""
        if session_id is None:
            owner = self._owners.identify(ctx)
            session_id = owner.default_id if owner is not None else None
            if session_id is None:
                raise ToolError("no_session: this client has no session of its own to close.")
        with translated(session_id):
            session = await self._client.get_session(session_id)
            await session.close()
        holder = self._owners.holder(session_id)
        if holder is not None:
            holder.forget(session_id)
        self._jobs.forget_sessions([session_id])
        return tool_result(SessionCloseOutput(session_id=session_id, closed=True))
