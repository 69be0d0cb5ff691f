"""The structured output of every tool: these models are the ``outputSchema`` clients see in
``tools/list`` and what ``structuredContent`` is validated against.

Texts in them are already fitted to the output budget (``*_cut_chars`` say how much went);
images travel as MCP image content beside them, never as base64 in here.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "CellError",
    "CellStatus",
    "CellValue",
    "CompileOutput",
    "EditOutput",
    "ExecuteCodeOutput",
    "FileEntry",
    "ListFilesOutput",
    "ProcessInputOutput",
    "ProcessOutput",
    "ReadFileOutput",
    "RunCodeOutput",
    "SessionCloseOutput",
    "SessionCreateOutput",
    "SessionListOutput",
    "SessionRow",
    "ShellOutput",
    "WriteFileOutput",
]

CellStatus = Literal["ok", "error", "timeout", "interrupted", "running"]


class Output(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CompileOutput(Output):
    stdout: str
    stderr: str
    exit_code: int
    duration_ms: int


class RunCodeOutput(Output):
    """A one-shot run in a throwaway sandbox."""

    language: str
    exit_code: int = Field(description="The program's exit code; non-zero is a normal result.")
    stdout: str
    stderr: str
    timed_out: bool
    truncated: bool = Field(description="The server cut a stream at its 1 MiB cap.")
    duration_ms: int
    compile: CompileOutput | None = Field(
        None, description="Compiled languages: the compile step (failed: the program did not run)."
    )
    stdout_cut_chars: int = 0
    stderr_cut_chars: int = 0
    note: str | None = None


class ShellOutput(Output):
    """A shell command in a session: its result, or its output so far while it runs."""

    session_id: str
    running: bool = Field(description="Still running: poll with process_output(process_id).")
    process_id: str | None = Field(None, description="Set while running.")
    exit_code: int | None = Field(
        None, description="The exit code once it ended (non-zero is a normal result)."
    )
    timed_out: bool = False
    cancelled: bool = False
    truncated: bool = Field(False, description="The server cut a stream at its 1 MiB cap.")
    stdout: str
    stderr: str
    duration_ms: int | None = None
    stdout_cut_chars: int = 0
    stderr_cut_chars: int = 0
    note: str | None = None


class CellValue(Output):
    """One value a cell showed: its last expression (``result``) or a ``display()``/figure."""

    kind: Literal["result", "display"]
    text: str | None = None
    html: str | None = None
    markdown: str | None = None
    latex: str | None = None
    json_data: object | None = Field(None, description="An application/json value.")
    images: list[str] = Field(
        default_factory=list, description="MIME types of the images sent as image content."
    )


class CellError(Output):
    name: str
    value: str
    traceback: str


class ExecuteCodeOutput(Output):
    """A Python cell in a context whose variables persist from call to call."""

    session_id: str
    context: str
    status: CellStatus
    running: bool = Field(description="Still running: poll with process_output(process_id).")
    process_id: str | None = None
    execution_count: int | None = None
    stdout: str
    stderr: str
    text: str | None = Field(None, description="The last expression's value, as a REPL shows it.")
    values: list[CellValue] = Field(default_factory=list)
    error: CellError | None = None
    state_preserved: bool | None = Field(
        None, description="False: the interpreter restarted and earlier variables are gone."
    )
    duration_ms: int | None = None
    stdout_cut_chars: int = 0
    stderr_cut_chars: int = 0
    note: str | None = None


class ProcessOutput(Output):
    """A job that outlived its first call: output since the last poll, and its end."""

    process_id: str
    kind: Literal["shell", "execute_code"]
    session_id: str
    running: bool
    stdout: str = Field(description="Output written since the previous poll.")
    stderr: str
    exit_code: int | None = Field(None, description="shell jobs, once ended.")
    timed_out: bool = False
    cancelled: bool = False
    status: CellStatus | None = Field(None, description="execute_code jobs.")
    execution_count: int | None = None
    text: str | None = None
    values: list[CellValue] = Field(default_factory=list)
    error: CellError | None = None
    duration_ms: int | None = None
    stdout_cut_chars: int = 0
    stderr_cut_chars: int = 0
    note: str | None = None


class ProcessInputOutput(Output):
    process_id: str
    bytes: int = Field(description="Bytes written to the job's stdin.")
    eof: bool


class ReadFileOutput(Output):
    path: str
    kind: Literal["text", "image", "binary"]
    size: int = Field(description="Bytes in the whole file.")
    mime: str | None = None
    content: str | None = Field(None, description="Text files: the lines read.")
    first_line: int | None = None
    last_line: int | None = None
    total_lines: int | None = None
    next_offset: int | None = Field(None, description="Pass as offset to read on; None at the end.")
    note: str | None = None


class WriteFileOutput(Output):
    path: str
    bytes: int


class EditOutput(Output):
    path: str
    replacements: int
    bytes: int = Field(description="Size of the file after the edit.")


class FileEntry(Output):
    name: str
    path: str
    type: Literal["file", "directory", "symlink"]
    size: int
    modified_at: str


class ListFilesOutput(Output):
    path: str
    count: int
    entries: list[FileEntry]
    shown: int = Field(description="Entries listed here (the first ones, by path).")
    note: str | None = None


class SessionCreateOutput(Output):
    session_id: str
    language: str
    closes_with_client: bool = Field(
        description="Closed when this MCP client disconnects (else: session_close or expiry)."
    )


class SessionRow(Output):
    session_id: str
    language: str
    state: str
    created_at: str
    last_activity: str
    idle_minutes: float
    execution_count: int
    this_client: bool = Field(description="Owned by the calling MCP client.")


class SessionListOutput(Output):
    count: int
    sessions: list[SessionRow]


class SessionCloseOutput(Output):
    session_id: str
    closed: bool
