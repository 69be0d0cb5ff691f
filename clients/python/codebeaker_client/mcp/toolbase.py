"""What every tool shares: finding the session a call acts on, turning SDK errors into tool
errors, and the parameters several tools take."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any, Final

from mcp.server.mcpserver import Context
from pydantic import Field

from codebeaker_client import AsyncCodeBeaker, AsyncSession
from codebeaker_client.errors import CodeBeakerError
from codebeaker_client.mcp.errors import ToolError, explain, translated
from codebeaker_client.mcp.jobs import Jobs
from codebeaker_client.mcp.owners import Owner, Owners
from codebeaker_client.mcp.settings import Settings

__all__ = ["NO_OWNER", "SessionId", "Target", "Timeout", "ToolBase"]

NO_OWNER: Final = (
    "no_session: no session_id was given, and this client has no session of its own: it "
    "speaks MCP 2026-07-28 over HTTP, which has no sessions to own one by. Call "
    "session_create and pass the session_id it returns to this tool (session_close it when "
    "done; idle sessions also expire)."
)

SessionId = Annotated[
    str | None,
    Field(description="A session from session_create; omit to use this client's own session."),
]
Timeout = Annotated[
    float | None,
    Field(gt=0, description="Seconds before it is killed (server default 30, at most 600)."),
]


@dataclass(frozen=True)
class Target:
    """The session a call acts on; ``owner`` is set when it is the caller's own."""

    session: AsyncSession
    owner: Owner | None


class ToolBase:
    """The state and plumbing of the tools, over one SDK client shared by every MCP client."""

    def __init__(
        self, client: AsyncCodeBeaker, owners: Owners, jobs: Jobs, settings: Settings
    ) -> None:
        self._client = client
        self._owners = owners
        self._jobs = jobs
        self._wait = settings.wait_seconds
        self._budget = settings.budget

    async def _target(self, ctx: Context[Any, Any], session_id: str | None) -> Target:
        if session_id:
            with translated(session_id):
                return Target(await self._client.get_session(session_id), None)
        owner = self._owners.identify(ctx)
        if owner is None:
            raise ToolError(NO_OWNER)
        with translated():
            return Target(await owner.default(), owner)

    @contextlib.contextmanager
    def _on(self, target: Target) -> Iterator[None]:
        """SDK errors as tool errors; the caller's own session, once gone, is forgotten so
        that the next call starts a fresh one."""
        try:
            yield
        except CodeBeakerError as exc:
            gone = exc.kind in ("session_not_found", "session_terminated")
            if gone and target.owner is not None:
                target.owner.forget(target.session.id)
            owned = target.owner is not None
            raise ToolError(explain(exc, session_id=target.session.id, owned=owned)) from exc
