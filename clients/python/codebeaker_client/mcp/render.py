"""From SDK results to tool results: the output models, fitted to the budget, plus the MCP
content blocks a model reads (the JSON of the structured output, then any images).

Following the MCP spec's advice for structured output, the text block is the serialized
structured content, so a client that reads only ``content`` misses nothing.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Final, cast, get_args

from mcp_types import CallToolResult, ContentBlock, ImageContent, TextContent
from pydantic import BaseModel

from codebeaker_client import ExecResult, Execution, Result
from codebeaker_client.mcp.media import (
    IMAGE_TYPES,
    MAX_IMAGE_BYTES,
    image_block,
    image_mime,
    looks_binary,
    pick_images,
)
from codebeaker_client.mcp.models import (
    CellError,
    CellStatus,
    CellValue,
    CompileOutput,
    ExecuteCodeOutput,
    FileEntry,
    ListFilesOutput,
    ProcessOutput,
    ReadFileOutput,
    RunCodeOutput,
    ShellOutput,
)
from codebeaker_client.mcp.shaping import Cut, fit, page_lines
from codebeaker_client.models.commands import DirectoryEntry
from codebeaker_client.models.results import RunResult

__all__ = [
    "CELL_HINT",
    "OUTPUT_HINT",
    "Fitted",
    "cell_output",
    "file_output",
    "image_block",
    "job_output",
    "listing_output",
    "run_output",
    "running_note",
    "shell_output",
    "tool_result",
]

OUTPUT_HINT: Final = (
    "to see all of it, run the command again with its output redirected to a file "
    "(cmd > /tmp/out.txt 2>&1) and read that with read_file(offset, limit), or filter it "
    "(grep, tail)"
)
CELL_HINT: Final = "print less, or write it to a file and read it with read_file(offset, limit)"


def tool_result(output: BaseModel, images: Sequence[ImageContent] = ()) -> CallToolResult:
    """``output`` as structured content, its JSON as the text block, then the images. Fields
    that are null are left out (every one is optional): fewer tokens for the model to read."""
    structured = output.model_dump(mode="json", exclude_none=True)
    text = json.dumps(structured, ensure_ascii=False)
    content: list[ContentBlock] = [TextContent(type="text", text=text), *images]
    return CallToolResult(content=content, structured_content=structured)


def running_note(job_id: str, waited: float) -> str:
    return (
        f"still running after {waited:g} s; it goes on in the session. Call "
        f"process_output(process_id={job_id!r}) to wait for more output and its end, "
        "process_input to write to its stdin, process_cancel to stop it."
    )


def _notes(*notes: str | None) -> str | None:
    joined = " ".join(note for note in notes if note)
    return joined or None


def _cut_note(cuts: dict[str, Cut], hint: str) -> str | None:
    cut = [name for name, value in cuts.items() if value.cut]
    if not cut:
        return None
    return f"{' and '.join(cut)} cut in the middle to fit; {hint}."


def run_output(result: RunResult, language: str, budget: int) -> RunCodeOutput:
    cuts = fit({"stdout": result.stdout, "stderr": result.stderr}, budget, OUTPUT_HINT)
    compile_step = None
    if result.compile is not None:
        compiled = fit(
            {"stdout": result.compile.stdout, "stderr": result.compile.stderr}, budget // 2
        )
        compile_step = CompileOutput(
            stdout=compiled["stdout"].text,
            stderr=compiled["stderr"].text,
            exit_code=result.compile.exit_code,
            duration_ms=result.compile.duration_ms,
        )
    return RunCodeOutput(
        language=language,
        exit_code=result.exit_code,
        stdout=cuts["stdout"].text,
        stderr=cuts["stderr"].text,
        timed_out=result.timed_out,
        truncated=result.truncated,
        duration_ms=result.duration_ms,
        compile=compile_step,
        stdout_cut_chars=cuts["stdout"].cut_chars,
        stderr_cut_chars=cuts["stderr"].cut_chars,
        note=_cut_note(cuts, "write the program's output to a file in a session instead"),
    )


def shell_output(
    session_id: str,
    stdout: str,
    stderr: str,
    budget: int,
    *,
    result: ExecResult | None = None,
    job_id: str | None = None,
    waited: float = 0.0,
) -> ShellOutput:
    """A finished command (``result``) or a running one (``job_id``, output so far)."""
    cuts = fit({"stdout": stdout, "stderr": stderr}, budget, OUTPUT_HINT)
    running = result is None
    return ShellOutput(
        session_id=session_id,
        running=running,
        process_id=job_id if running else None,
        exit_code=None if result is None else result.exit_code,
        timed_out=result is not None and result.timed_out,
        cancelled=result is not None and result.cancelled,
        truncated=result is not None and result.truncated,
        stdout=cuts["stdout"].text,
        stderr=cuts["stderr"].text,
        duration_ms=None if result is None else result.duration_ms,
        stdout_cut_chars=cuts["stdout"].cut_chars,
        stderr_cut_chars=cuts["stderr"].cut_chars,
        note=_notes(
            running_note(job_id, waited) if running and job_id else None,
            _timeout_note(result),
            _cut_note(cuts, OUTPUT_HINT),
        ),
    )


def _timeout_note(result: ExecResult | None) -> str | None:
    if result is None or not result.timed_out:
        return None
    return "it ran past its timeout and was killed; pass a larger timeout (seconds) if needed."


class Fitted:
    """A cell's texts fitted to the budget together, and its images."""

    def __init__(self, execution: Execution | None, stdout: str, stderr: str, budget: int):
        self._budget = budget
        texts = {"stdout": stdout, "stderr": stderr}
        if execution is not None and execution.error is not None:
            texts["traceback"] = execution.error.traceback
        values = execution.results if execution is not None else []
        for index, value in enumerate(values):
            for mime in ("text/plain", "text/markdown", "text/latex"):
                text = value.mime.get(mime)
                if isinstance(text, str):
                    texts[f"{index}:{mime}"] = text
            if value.text is None and isinstance(value.html, str):
                texts[f"{index}:text/html"] = value.html
        self.cuts = fit(texts, budget, CELL_HINT)
        found = [
            (index, mime, data)
            for index, value in enumerate(values)
            for mime in IMAGE_TYPES
            if isinstance(data := value.mime.get(mime), str)
        ]
        kept, self._images_note = pick_images([data for _, _, data in found])
        picked = [found[pick] for pick in kept]
        self._sent = {(index, mime) for index, mime, _ in picked}
        self.images = [image_block(data, mime) for _, mime, data in picked]
        self.values = [self._value(index, value) for index, value in enumerate(values)]
        self.error = None
        if execution is not None and execution.error is not None:
            error = execution.error
            traceback = self.cuts["traceback"].text
            self.error = CellError(name=error.name, value=error.value, traceback=traceback)

    def _text(self, index: int, mime: str) -> str | None:
        cut = self.cuts.get(f"{index}:{mime}")
        return cut.text if cut is not None else None

    def _value(self, index: int, value: Result) -> CellValue:
        return CellValue(
            kind="result" if value.kind == "result" else "display",
            text=self._text(index, "text/plain"),
            html=self._text(index, "text/html"),
            markdown=self._text(index, "text/markdown"),
            latex=self._text(index, "text/latex"),
            json_data=self._json(value.json),
            images=[mime for mime in IMAGE_TYPES if (index, mime) in self._sent],
        )

    def _json(self, value: object) -> object:
        """A JSON value small enough to send whole; a bigger one is left out (its text
        representation is there, cut to fit)."""
        if value is None or len(json.dumps(value)) > self._budget // 4:
            return None
        return value

    def text(self) -> str | None:
        """The last expression's value, as shown in ``values`` (already fitted)."""
        for value in reversed(self.values):
            if value.kind == "result":
                return value.text
        return None

    def note(self) -> str | None:
        return _notes(_cut_note(self.cuts, CELL_HINT), self._images_note)


def cell_output(
    session_id: str,
    context: str,
    budget: int,
    *,
    execution: Execution | None = None,
    stdout: str = "",
    stderr: str = "",
    job_id: str | None = None,
    waited: float = 0.0,
) -> tuple[ExecuteCodeOutput, list[ImageContent]]:
    """A finished cell (``execution``) or a running one (``job_id``, output so far)."""
    if execution is not None:
        stdout, stderr = execution.stdout, execution.stderr
    fitted = Fitted(execution, stdout, stderr, budget)
    running = execution is None
    output = ExecuteCodeOutput(
        session_id=session_id,
        context=context if execution is None else execution.context_id,
        status="running" if execution is None else _status(execution.status),
        running=running,
        process_id=job_id if running else None,
        execution_count=None if execution is None else execution.execution_count,
        stdout=fitted.cuts["stdout"].text,
        stderr=fitted.cuts["stderr"].text,
        text=fitted.text(),
        values=fitted.values,
        error=fitted.error,
        state_preserved=None if execution is None else execution.state_preserved,
        duration_ms=None if execution is None else execution.duration_ms,
        stdout_cut_chars=fitted.cuts["stdout"].cut_chars,
        stderr_cut_chars=fitted.cuts["stderr"].cut_chars,
        note=_notes(
            running_note(job_id, waited) if running and job_id else None,
            _cell_note(execution),
            fitted.note(),
        ),
    )
    return output, fitted.images


def _status(status: str) -> CellStatus:
    """The SDK's status string as the output model's literal (the server sends no other)."""
    if status not in get_args(CellStatus):
        raise ValueError(f"unknown cell status {status!r}")
    return cast(CellStatus, status)


def _cell_note(execution: Execution | None) -> str | None:
    if execution is None:
        return None
    if not execution.state_preserved:
        return "the interpreter was restarted: variables from earlier calls are gone."
    if execution.status == "timeout":
        return "the cell ran past its timeout and was interrupted; pass a larger timeout if needed."
    return None


def job_output(
    job_id: str,
    kind: str,
    session_id: str,
    budget: int,
    *,
    stdout: str,
    stderr: str,
    end: ExecResult | Execution | None,
    waited: float,
) -> tuple[ProcessOutput, list[ImageContent]]:
    """A poll of a job: what it wrote since the last poll, and its end once it came."""
    if isinstance(end, Execution):
        fitted = Fitted(end, stdout, stderr, budget)
        output = ProcessOutput(
            process_id=job_id,
            kind="execute_code",
            session_id=session_id,
            running=False,
            stdout=fitted.cuts["stdout"].text,
            stderr=fitted.cuts["stderr"].text,
            status=_status(end.status),
            execution_count=end.execution_count,
            text=fitted.text(),
            values=fitted.values,
            error=fitted.error,
            duration_ms=end.duration_ms,
            stdout_cut_chars=fitted.cuts["stdout"].cut_chars,
            stderr_cut_chars=fitted.cuts["stderr"].cut_chars,
            note=_notes(_cell_note(end), fitted.note()),
        )
        return output, fitted.images
    cuts = fit({"stdout": stdout, "stderr": stderr}, budget, OUTPUT_HINT)
    running = end is None
    output = ProcessOutput(
        process_id=job_id,
        kind="shell" if kind == "shell" else "execute_code",
        session_id=session_id,
        running=running,
        stdout=cuts["stdout"].text,
        stderr=cuts["stderr"].text,
        exit_code=None if end is None else end.exit_code,
        timed_out=end is not None and end.timed_out,
        cancelled=end is not None and end.cancelled,
        status="running" if running and kind == "execute_code" else None,
        duration_ms=None if end is None else end.duration_ms,
        stdout_cut_chars=cuts["stdout"].cut_chars,
        stderr_cut_chars=cuts["stderr"].cut_chars,
        note=_notes(
            running_note(job_id, waited) if running else None,
            _timeout_note(end),
            _cut_note(cuts, OUTPUT_HINT),
        ),
    )
    return output, []


def file_output(
    path: str, data: bytes, offset: int, limit: int | None, budget: int
) -> tuple[ReadFileOutput, list[ImageContent]]:
    """A file as ``read_file`` returns it: an image to look at, a binary file described, or
    a page of text lines."""
    mime = image_mime(data)
    if mime is not None:
        if len(data) > MAX_IMAGE_BYTES:
            note = "too large to show as an image; shrink it first (e.g. with Pillow)."
            output = ReadFileOutput(path=path, kind="image", size=len(data), mime=mime, note=note)
            return output, []
        output = ReadFileOutput(path=path, kind="image", size=len(data), mime=mime)
        return output, [image_block(data, mime)]
    if looks_binary(data):
        note = "binary file; inspect it with shell (file, xxd | head, ...)."
        return ReadFileOutput(path=path, kind="binary", size=len(data), note=note), []
    page = page_lines(data.decode("utf-8", errors="replace"), offset, limit, budget)
    more = None
    if page.next_offset is not None:
        more = (
            f"lines {page.first}-{page.last} of {page.total}; offset={page.next_offset} reads on."
        )
    output = ReadFileOutput(
        path=path,
        kind="text",
        size=len(data),
        content=page.text,
        first_line=page.first,
        last_line=page.last,
        total_lines=page.total,
        next_offset=page.next_offset,
        note=more,
    )
    return output, []


def listing_output(path: str, entries: Sequence[DirectoryEntry], budget: int) -> ListFilesOutput:
    """A directory listing, its first entries only when it is long (about 100 characters
    of JSON each, so budget/100 of them, and at least 50)."""
    shown = [
        FileEntry(
            name=entry.name,
            path=entry.path,
            type=entry.type,
            size=entry.size,
            modified_at=entry.modified_at,
        )
        for entry in entries[: max(50, budget // 100)]
    ]
    note = None
    if len(shown) < len(entries):
        note = f"the first {len(shown)} of {len(entries)} entries; list a subdirectory for more."
    return ListFilesOutput(
        path=path, count=len(entries), entries=shown, shown=len(shown), note=note
    )
