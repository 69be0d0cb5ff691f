"""The tools: what each does with the SDK, and how it is registered on the MCP server.

Every tool declares its input (parameters) and output (``Annotated[CallToolResult, Model]``)
schemas; the model's JSON is also the text a client reads, and images ride along as image
content. Tools without ``session_id`` act on the calling client's own session.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Annotated, Any, Final

from mcp.server.mcpserver import Context, MCPServer
from mcp_types import CallToolResult, ToolAnnotations
from pydantic import Field

from codebeaker_client import AsyncCodeBeaker, AsyncSession, ExecResult, Execution
from codebeaker_client.errors import CodeBeakerError, InputClosed
from codebeaker_client.mcp.edits import EditError, replace_exact
from codebeaker_client.mcp.errors import ToolError, explain, translated
from codebeaker_client.mcp.jobs import Job, Jobs, UnknownJob
from codebeaker_client.mcp.models import (
    EditOutput,
    ExecuteCodeOutput,
    ListFilesOutput,
    ProcessInputOutput,
    ProcessOutput,
    ReadFileOutput,
    RunCodeOutput,
    SessionCloseOutput,
    SessionCreateOutput,
    SessionListOutput,
    SessionRow,
    ShellOutput,
    WriteFileOutput,
)
from codebeaker_client.mcp.owners import Owner, Owners
from codebeaker_client.mcp.render import (
    cell_output,
    file_output,
    job_output,
    listing_output,
    run_output,
    shell_output,
    tool_result,
)
from codebeaker_client.mcp.settings import Settings

__all__ = ["Toolbox", "register_tools"]

NO_OWNER: Final = (
    "no_session: no session_id was given, and this client has no session of its own: it "
    "speaks MCP 2026-07-28 over HTTP, which has no sessions to own one by. Call "
    "session_create and pass the session_id it returns to this tool (session_close it when "
    "done; idle sessions also expire)."
)
CANCEL_GRACE_SECONDS: Final = 10.0
"""How long process_cancel waits for a cancelled job's last words."""

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


class Toolbox:
    """The tools, over one SDK client shared by every MCP client of this server."""

    def __init__(
        self, client: AsyncCodeBeaker, owners: Owners, jobs: Jobs, settings: Settings
    ) -> None:
        self._client = client
        self._owners = owners
        self._jobs = jobs
        self._wait = settings.wait_seconds
        self._budget = settings.budget

    # -- plumbing ------------------------------------------------------------------------

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
        with self._on(target):
            process = await session.spawn(
                ["bash", "-c", command], cwd=cwd, timeout=timeout, stdin=stdin
            )
            if not interactive:
                with contextlib.suppress(InputClosed):
                    await process.close_stdin()
        job = Job("shell", session, process=process, interactive=interactive)
        job.run(asyncio.create_task(_ended(process.wait())))
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
        job = Job("execute_code", session, context=context or "default")
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

    # -- files ---------------------------------------------------------------------------

    async def read_file(
        self,
        ctx: Context[Any, Any],
        path: Annotated[str, Field(description="Relative to /workspace, or absolute.")],
        session_id: SessionId = None,
        offset: Annotated[int, Field(ge=1, description="First line to read (1-based).")] = 1,
        limit: Annotated[int | None, Field(ge=1, description="Most lines to read.")] = None,
    ) -> Annotated[CallToolResult, ReadFileOutput]:
        """Read a file from the session: text a page of lines at a time (next_offset reads
        on), PNG/JPEG/GIF/WebP images as images, other binary files described."""
        target = await self._target(ctx, session_id)
        with self._on(target):
            data = await target.session.files.read_bytes(path)
        output, images = file_output(path, data, offset, limit, self._budget)
        return tool_result(output, images)

    async def write_file(
        self,
        ctx: Context[Any, Any],
        path: Annotated[str, Field(description="Relative to /workspace, or absolute.")],
        content: Annotated[str, Field(description="The file's whole new text.")],
        session_id: SessionId = None,
    ) -> Annotated[CallToolResult, WriteFileOutput]:
        """Create or replace a text file in the session (parent directories are made)."""
        target = await self._target(ctx, session_id)
        with self._on(target):
            written = await target.session.files.write(path, content)
        return tool_result(WriteFileOutput(path=path, bytes=written))

    async def edit_file(
        self,
        ctx: Context[Any, Any],
        path: Annotated[str, Field(description="Relative to /workspace, or absolute.")],
        old_string: Annotated[str, Field(description="Exact text to replace, as in the file.")],
        new_string: Annotated[str, Field(description="Its replacement.")],
        replace_all: Annotated[
            bool, Field(description="Replace every occurrence (else it must occur once).")
        ] = False,
        session_id: SessionId = None,
    ) -> Annotated[CallToolResult, EditOutput]:
        """Replace exact text in a file. old_string must occur exactly once (quote enough
        context), unless replace_all; otherwise nothing is changed and the error says why."""
        target = await self._target(ctx, session_id)
        with self._on(target):
            data = await target.session.files.read_bytes(path)
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise ToolError(f"not_text: {path} is not UTF-8 text; edit it with shell.") from None
        try:
            replaced = replace_exact(text, old_string, new_string, replace_all=replace_all)
        except EditError as exc:
            raise ToolError(f"edit_failed: {path}: {exc}") from None
        with self._on(target):
            written = await target.session.files.write(path, replaced.text)
        return tool_result(EditOutput(path=path, replacements=replaced.count, bytes=written))

    async def list_files(
        self,
        ctx: Context[Any, Any],
        path: Annotated[str, Field(description="A directory (/workspace by default).")] = ".",
        recursive: Annotated[bool, Field(description="Include subdirectories.")] = False,
        session_id: SessionId = None,
    ) -> Annotated[CallToolResult, ListFilesOutput]:
        """List a directory of the session (hidden entries left out), sorted by path."""
        target = await self._target(ctx, session_id)
        with self._on(target):
            entries = await target.session.files.list(path, recursive=recursive)
        return tool_result(listing_output(path, entries, self._budget))

    # -- sessions ------------------------------------------------------------------------

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
        with translated():
            session = await self._client.create_session(
                language,
                memory_limit_mb=memory_limit_mb,
                cpu_limit=cpu_limit,
                idle_timeout_minutes=idle_timeout_minutes,
                env=env,
            )
        owner = None if keep else self._owners.identify(ctx)
        if owner is not None:
            owner.adopt(session)
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
