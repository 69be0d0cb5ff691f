"""The MCP server: one SDK client, the session owners and the job registry wired to the
official ``mcp`` package's ``MCPServer``, served over stdio or Streamable HTTP."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from collections.abc import AsyncIterator
from importlib.metadata import PackageNotFoundError, version
from typing import Final

import anyio
from mcp.server.mcpserver import MCPServer

from codebeaker_client import AsyncCodeBeaker
from codebeaker_client.mcp.jobs import Jobs
from codebeaker_client.mcp.owners import Owners
from codebeaker_client.mcp.settings import Settings
from codebeaker_client.mcp.tools import Toolbox, register_tools

__all__ = ["App", "serve"]

logger = logging.getLogger(__name__)

INSTRUCTIONS: Final = """\
CodeBeaker runs code in hardened, network-less Linux sandboxes (Docker containers).
Tools without session_id use this client's own session, started on first use and closed
when the client disconnects: files in /workspace, processes and execute_code variables
persist between calls. session_create starts another one (other language or limits);
clients of MCP 2026-07-28 over HTTP have no session of their own and must pass one.
A non-zero exit or a Python exception is a normal result; isError means the call itself
failed, and its text says what to do. shell and execute_code answer after a bounded wait:
if the job is still running they return a process_id to poll with process_output.
Long output is cut in the middle; redirect it to a file and read_file it to see all."""
SHUTDOWN_SECONDS: Final = 15.0
"""Closing every client's sessions at shutdown may take this long at most."""


def _version() -> str:
    try:
        return version("codebeaker-client")
    except PackageNotFoundError:  # pragma: no cover - a source checkout without install
        return "0"


class App:
    """Owns the long-lived parts and their order of shutdown: jobs, then sessions, then the
    connection to CodeBeaker."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.client = AsyncCodeBeaker(settings.url, api_key=settings.api_key)
        self.jobs = Jobs()
        self.owners = Owners(
            self.client,
            transport=settings.transport,
            language=settings.language,
            released=self.jobs.forget_sessions,
        )
        self.server: MCPServer[App] = MCPServer(
            "codebeaker",
            title="CodeBeaker",
            instructions=INSTRUCTIONS,
            version=_version(),
            lifespan=self._lifespan,
        )
        register_tools(self.server, Toolbox(self.client, self.owners, self.jobs, settings))

    @contextlib.asynccontextmanager
    async def _lifespan(self, _: MCPServer[App]) -> AsyncIterator[App]:
        """Entered once (HTTP) or per stdio run; its end closes what clients left open."""
        try:
            yield self
        finally:
            with anyio.move_on_after(SHUTDOWN_SECONDS, shield=True):
                await self.close()

    async def close(self) -> None:
        await self.jobs.close()
        await self.owners.close()
        await self.client.close()

    async def serve(self) -> None:
        if self.settings.transport == "http":
            await self.server.run_streamable_http_async(
                host=self.settings.host, port=self.settings.port
            )
            return
        async with anyio.create_task_group() as group:
            group.start_soon(self._exit_on_signal)
            await self.server.run_stdio_async()
            group.cancel_scope.cancel()

    async def _exit_on_signal(self) -> None:
        """SIGTERM/SIGINT end a stdio server like a closed stdin: its sessions are closed first
        (an MCP client sends SIGTERM when the server is slow to exit). Then the process exits
        at once: the SDK reads stdin in a worker thread that no cancellation can stop."""
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for signum in signals:
                logger.info("%s: closing this client's sessions", signal.Signals(signum).name)
                with anyio.move_on_after(SHUTDOWN_SECONDS, shield=True):
                    await self.close()
                os._exit(0)


def serve(settings: Settings) -> None:
    """Run the MCP server until its client goes (stdio) or it is stopped (HTTP)."""
    anyio.run(App(settings).serve)
