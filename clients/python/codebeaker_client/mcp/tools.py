"""The tools: what each does with the SDK, and how it is registered on the MCP server.

Every tool declares its input (parameters) and output (``Annotated[CallToolResult, Model]``)
schemas; the model's JSON is also the text a client reads, and images ride along as image
content. Tools without ``session_id`` act on the calling client's own session. Here are
``run_code`` and the tools of commands, cells and the jobs they leave running; the file tools
are in ``filetools.py``, the session tools in ``sessiontools.py``, their plumbing in
``toolbase.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Final

from mcp.server.mcpserver import Context, MCPServer
from mcp_types import CallToolResult, ToolAnnotations
from pydantic import Field

from codebeaker_client import ExecResult, Execution
from codebeaker_client.errors import InputClosed
from codebeaker_client.mcp.errors import ToolError, translated
from codebeaker_client.mcp.filetools import FileTools
from codebeaker_client.mcp.jobs import Job, JobKind, TooManyJobs, UnknownJob
from codebeaker_client.mcp.models import (
    ExecuteCodeOutput,
    ProcessInputOutput,
    ProcessOutput,
    RunCodeOutput,
    ShellOutput,
)
from codebeaker_client.mcp.render import (
    cell_output,
    job_output,
    run_output,
    shell_output,
    tool_result,
)
from codebeaker_client.mcp.sessiontools import SessionTools
from codebeaker_client.mcp.toolbase import SessionId, Target, Timeout

__all__ = ["Toolbox", "register_tools"]

CANCEL_GRACE_SECONDS: Final = 10.0
"""How long process_cancel waits for a cancelled job's last words."""


class Toolbox(FileTools, SessionTools):
    """The tools, over one SDK client shared by every MCP client of this server."""

    # -- plumbing ------------------------------------------------------------------------

    def _new_job(
        self,
        ctx: Context[Any, Any],
        target: Target,
        kind: JobKind,
        *,
        context: str | None = None,
        interactive: bool = False,
    ) -> Job:
        """A job about to start, counted against the running limits (refused past them)."""
        owner = target.owner or self._owners.identify(ctx)
        client = owner.key if owner is not None else None
        job = Job(kind, target.session, context=context, interactive=interactive, client=client)
        try:
            self._jobs.start(job)
        except TooManyJobs as exc:
            raise ToolError(
                f"too_many_jobs: {exc}. Wait for a running job's end with process_output, or "
                "stop one with process_cancel, then call again."
            ) from None
        return job

    async def _first_wait(self, job: Job) -> bool:
        """Wait for a new job's end up to the bound; whether it ended. A call cancelled by its
        client stops the job too: nobody else knows its id."""
        try:
            return await job.wait(self._wait)
        except BaseException:
            self._jobs.abandon(job)
            raise

    def _job(self, process_id: str) -> Job:
        try:
            return self._jobs.get(process_id)
        except UnknownJob:
            raise ToolError(
                f"unknown_process: no job {process_id!r}: it never existed, its end was "
                "already returned, or its session closed."
            ) from None

    # -- one-shot ------------------------------------------------------------------------

    async def run_code(
        self,
        language: Annotated[str, Field(description="python, javascript, go, c, cpp, java, ...")],
        code: Annotated[str, Field(description="The whole program.")],
        stdin: Annotated[str | None, Field(description="Text the program reads.")] = None,
        timeout: Timeout = None,
    ) -> Annotated[CallToolResult, RunCodeOutput]:
        """Run one program in a fresh, throwaway sandbox (no session, nothing kept). A
        non-zero exit is a normal result. For work across several calls use a session."""
        with translated():
            result = await self._client.run(language, code, stdin=stdin, timeout=timeout)
        return tool_result(run_output(result, language, self._budget))

    # -- commands and cells --------------------------------------------------------------

    async def shell(
        self,
        ctx: Context[Any, Any],
        command: Annotated[str, Field(description="A bash command line (pipes, &&, ... work).")],
        session_id: SessionId = None,
        cwd: Annotated[str | None, Field(description="Working directory (/workspace).")] = None,
        timeout: Timeout = None,
        stdin: Annotated[str | None, Field(description="Text written to its stdin.")] = None,
        interactive: Annotated[
            bool, Field(description="Keep stdin open for process_input (else EOF after stdin).")
        ] = False,
    ) -> Annotated[CallToolResult, ShellOutput]:
        """Run a command with bash in the session's sandbox; files and processes persist
        between calls. A non-zero exit is a normal result (see exit_code). Still running
        after the wait: returns the output so far and a process_id for process_output."""
        target = await self._target(ctx, session_id)
        session = target.session
        job = self._new_job(ctx, target, "shell", interactive=interactive)
        try:
            with self._on(target):
                process = job.process = await session.spawn(
                    ["bash", "-c", command], cwd=cwd, timeout=timeout, stdin=stdin
                )
        except BaseException:
            self._jobs.discard(job)
            raise
        job.run(asyncio.create_task(_ended(process.wait())))
        if not interactive:
            try:
                with self._on(target), contextlib.suppress(InputClosed):
                    await process.close_stdin()
            except BaseException:
                self._jobs.abandon(job)
                raise
        if await self._first_wait(job):
            with self._on(target):
                end = job.result()
            assert isinstance(end, ExecResult)
            return tool_result(
                shell_output(session.id, end.stdout, end.stderr, self._budget, result=end)
            )
        self._jobs.add(job)
        stdout, stderr = job.take_new()
        output = shell_output(
            session.id, stdout, stderr, self._budget, job_id=job.id, waited=self._wait
        )
        return tool_result(output)

    async def execute_code(
        self,
        ctx: Context[Any, Any],
        code: Annotated[str, Field(description="Python; the last expression's value is shown.")],
        session_id: SessionId = None,
        context: Annotated[
            str | None,
            Field(description="Another interpreter of the session, by id; omit for the default."),
        ] = None,
        timeout: Annotated[
            float | None,
            Field(
                gt=0, description="Seconds before the cell is interrupted (default 30, max 600)."
            ),
        ] = None,
    ) -> Annotated[CallToolResult, ExecuteCodeOutput]:
        """Run Python in the session's interpreter, like a notebook cell: variables, imports
        and functions stay from one call to the next. Returns printed output, the last
        value, displayed values and plots (as images), or the exception (a normal result).
        Still running after the wait: output so far and a process_id for process_output."""
        target = await self._target(ctx, session_id)
        session = target.session
        job = self._new_job(ctx, target, "execute_code", context=context or "default")
        cell = session.run_code(code, context=context, timeout=timeout, on_output=job.hear)
        job.run(asyncio.create_task(_ended(cell)))
        if await self._first_wait(job):
            with self._on(target):
                end = job.result()
            assert isinstance(end, Execution)
            output, images = cell_output(session.id, end.context_id, self._budget, execution=end)
            return tool_result(output, images)
        self._jobs.add(job)
        stdout, stderr = job.take_new()
        output, images = cell_output(
            session.id,
            job.context or "default",
            self._budget,
            stdout=stdout,
            stderr=stderr,
            job_id=job.id,
            waited=self._wait,
        )
        return tool_result(output, images)

    # -- long jobs -----------------------------------------------------------------------

    async def process_output(
        self,
        process_id: Annotated[str, Field(description="From shell or execute_code.")],
        wait_seconds: Annotated[
            float | None, Field(ge=0, description="Wait at most this long for its end.")
        ] = None,
    ) -> Annotated[CallToolResult, ProcessOutput]:
        """Wait (up to the MCP server's bound, 30 s by default) for a running job to end, then
        return the output it wrote since the previous call, and its result once it ended."""
        job = self._job(process_id)
        waited = self._wait if wait_seconds is None else min(wait_seconds, self._wait)
        return self._poll(job, await job.wait(waited), waited)

    def _poll(self, job: Job, ended: bool, waited: float) -> CallToolResult:
        end: ExecResult | Execution | None = None
        if ended:
            self._jobs.drop(job.id)
            with translated(job.session.id):
                end = job.result()
            stdout, stderr = job.take_new((end.stdout, end.stderr))
        else:
            stdout, stderr = job.take_new()
        output, images = job_output(
            job.id,
            job.kind,
            job.session.id,
            self._budget,
            stdout=stdout,
            stderr=stderr,
            end=end,
            waited=waited,
        )
        return tool_result(output, images)

    async def process_input(
        self,
        process_id: Annotated[str, Field(description="A shell job started with interactive.")],
        data: Annotated[str, Field(description="Text to write (add \\n to end a line).")] = "",
        eof: Annotated[bool, Field(description="Close its stdin after the data.")] = False,
    ) -> Annotated[CallToolResult, ProcessInputOutput]:
        """Write to the stdin of a running shell job started with interactive=true."""
        job = self._job(process_id)
        if job.process is None:
            raise ToolError(
                "no_stdin: execute_code jobs read no input; pass data in the code instead."
            )
        if not job.interactive:
            raise ToolError(
                "input_closed: this job's stdin was closed at start; run the command with "
                "shell(interactive=true) to feed it with process_input."
            )
        written = 0
        with translated(job.session.id):
            if data:
                written = await job.process.write(data)
            if eof:
                # the data may have been the program's last read: then it has ended, and
                # its stdin with it, which is what eof asked for
                with contextlib.suppress(InputClosed) if data else contextlib.nullcontext():
                    await job.process.close_stdin()
        return tool_result(ProcessInputOutput(process_id=job.id, bytes=written, eof=eof))

    async def process_cancel(
        self, process_id: Annotated[str, Field(description="From shell or execute_code.")]
    ) -> Annotated[CallToolResult, ProcessOutput]:
        """Stop a running job (a shell command's whole process tree is killed; a cell is
        interrupted, its variables kept) and return its last output."""
        job = self._job(process_id)
        with translated(job.session.id):
            await job.stop()
        return self._poll(job, await job.wait(CANCEL_GRACE_SECONDS), CANCEL_GRACE_SECONDS)


async def _ended(ending: Awaitable[ExecResult] | Awaitable[Execution]) -> ExecResult | Execution:
    """Await a process's or a cell's end as one task type."""
    result: ExecResult | Execution = await ending
    return result


READ_ONLY = ToolAnnotations(read_only_hint=True)
DESTRUCTIVE = ToolAnnotations(destructive_hint=True)


def register_tools(server: MCPServer[Any], box: Toolbox) -> None:
    """Add every tool of ``box`` to ``server``; its docstring, on one line, describes it."""
    tools: list[tuple[Callable[..., Awaitable[CallToolResult]], ToolAnnotations | None]] = [
        (box.run_code, None),
        (box.execute_code, None),
        (box.shell, None),
        (box.process_output, READ_ONLY),
        (box.process_input, None),
        (box.process_cancel, DESTRUCTIVE),
        (box.read_file, READ_ONLY),
        (box.write_file, None),
        (box.edit_file, None),
        (box.list_files, READ_ONLY),
        (box.session_create, None),
        (box.session_list, READ_ONLY),
        (box.session_close, DESTRUCTIVE),
    ]
    for tool, hints in tools:
        description = " ".join((tool.__doc__ or "").split())
        server.add_tool(tool, description=description, annotations=hints)
