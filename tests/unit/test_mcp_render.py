"""The MCP server's results and errors, without a server: output models and content blocks,
cell images, incremental job output, error hints, settings and the command line."""

from __future__ import annotations

import argparse
import base64
import json

import pytest
from codebeaker_client import ExecResult, Execution, Result
from codebeaker_client.errors import LimitExceeded, SessionNotFound
from codebeaker_client.mcp.command import register
from codebeaker_client.mcp.errors import explain, translated
from codebeaker_client.mcp.jobs import Job, Jobs, UnknownJob
from codebeaker_client.mcp.media import MAX_IMAGE_BYTES, MAX_IMAGES
from codebeaker_client.mcp.render import (
    cell_output,
    file_output,
    job_output,
    listing_output,
    shell_output,
    tool_result,
)
from codebeaker_client.mcp.settings import Settings
from codebeaker_client.models.commands import DirectoryEntry
from codebeaker_client.models.contexts import CodeError
from codebeaker_client.models.jsonrpc import OutputChunk
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import ImageContent, TextContent

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 32).decode()


def execution(**fields: object) -> Execution:
    values: dict[str, object] = {
        "context_id": "default",
        "status": "ok",
        "execution_count": 3,
        "stdout": "",
        "stderr": "",
        "results": [],
        "error": None,
        "state_preserved": True,
        "duration_ms": 5,
        "truncated": False,
    }
    values.update(fields)
    return Execution(**values)  # type: ignore[arg-type]


def test_the_text_block_is_the_json_of_the_structured_content() -> None:
    result = ExecResult("out\n", "err\n", 3, False, False, 12)
    output = shell_output("S", result.stdout, result.stderr, 1000, result=result)
    tool = tool_result(output)
    assert tool.structured_content == output.model_dump(mode="json", exclude_none=True)
    assert "process_id" not in tool.structured_content, "nulls are left out"
    assert tool.structured_content["exit_code"] == 3
    assert tool.structured_content["running"] is False
    assert not tool.is_error, "a non-zero exit is a normal result"
    [block] = tool.content
    assert isinstance(block, TextContent)
    assert json.loads(block.text) == tool.structured_content


def test_a_running_command_says_how_to_poll_it() -> None:
    output = shell_output("S", "1\n", "", 1000, job_id="J1", waited=30)
    assert output.running
    assert output.process_id == "J1"
    assert output.exit_code is None
    assert output.note is not None
    assert "process_output(process_id='J1')" in output.note


def test_cut_output_is_counted_and_explained() -> None:
    stdout = "".join(f"{n}\n" for n in range(10_000))
    output = shell_output("S", stdout, "", 1000, result=ExecResult(stdout, "", 0, False, False, 1))
    assert output.stdout_cut_chars > 0
    assert output.stderr_cut_chars == 0
    assert output.note is not None
    assert "read_file" in output.note
    assert output.stdout.startswith("0\n1\n")
    assert output.stdout.endswith("9999\n")


def test_a_cells_plot_becomes_an_image_block_and_its_value_stays_text() -> None:
    figure = Result("display", {"text/plain": "<Figure>", "image/png": PNG})
    value = Result("result", {"text/plain": "42", "text/html": "<b>42</b>"})
    output, images = cell_output("S", "default", 1000, execution=execution(results=[figure, value]))
    assert [image.mime_type for image in images] == ["image/png"]
    assert images[0].data == PNG
    assert output.text == "42"
    assert [item.images for item in output.values] == [["image/png"], []]
    assert output.values[1].html is None, "html is left out when there is text"
    tool = tool_result(output, images)
    assert isinstance(tool.content[1], ImageContent)
    assert "iVBOR" not in tool.content[0].text  # type: ignore[union-attr]


def test_a_cells_images_are_capped_in_number_and_size_and_the_rest_named() -> None:
    big = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * MAX_IMAGE_BYTES).decode()
    figures = [Result("display", {"text/plain": "<Figure>", "image/png": PNG}) for _ in range(10)]
    figures.insert(1, Result("display", {"text/plain": "<Huge>", "image/png": big}))
    output, images = cell_output("S", "default", 1000, execution=execution(results=figures))
    assert len(images) == MAX_IMAGES == 8
    listed = [bool(value.images) for value in output.values]
    assert listed == [True, False, *[True] * 7, False, False], "only images sent are listed"
    assert output.note is not None
    assert "3 of 11 images (5.0 MiB) left out" in output.note
    assert "read_file" in output.note
    polled, sent = job_output(
        "J",
        "execute_code",
        "S",
        1000,
        stdout="",
        stderr="",
        end=execution(results=figures),
        waited=1,
    )
    assert len(sent) == 8
    assert polled.note == output.note


def test_a_cells_exception_is_a_normal_result() -> None:
    error = CodeError(name="ZeroDivisionError", value="division by zero", traceback="Tb\n")
    output, _ = cell_output("S", "default", 1000, execution=execution(status="error", error=error))
    assert output.status == "error"
    assert output.error is not None
    assert output.error.name == "ZeroDivisionError"
    assert not tool_result(output).is_error


def test_a_lost_state_is_pointed_out() -> None:
    output, _ = cell_output("S", "default", 1000, execution=execution(state_preserved=False))
    assert output.note is not None
    assert "variables from earlier calls are gone" in output.note


def chunk(stream: str, data: str) -> OutputChunk:
    return OutputChunk(session_id="S", request_id=1, stream=stream, data=data)


def test_a_job_hands_out_only_new_output_and_its_end_is_authoritative() -> None:
    job = Job("execute_code", object())  # type: ignore[arg-type]
    job.hear(chunk("stdout", "a\n"))
    job.hear(chunk("stderr", "x"))
    assert job.take_new() == ("a\n", "x")
    assert job.take_new() == ("", "")
    job.hear(chunk("stdout", "b\n"))
    assert job.take_new(("a\nb\nc\n", "x")) == ("b\nc\n", "")


def test_a_polled_cell_end_carries_its_values() -> None:
    value = Result("result", {"text/plain": "'done'"})
    output, images = job_output(
        "J",
        "execute_code",
        "S",
        1000,
        stdout="4\n",
        stderr="",
        end=execution(results=[value]),
        waited=1,
    )
    assert not output.running
    assert output.status == "ok"
    assert output.text == "'done'"
    assert images == []


def test_unknown_jobs_are_refused() -> None:
    with pytest.raises(UnknownJob):
        Jobs().get("nope")


def test_errors_say_what_to_do_next() -> None:
    gone = SessionNotFound("session not found: S")
    assert "session_create" in explain(gone, session_id="S", owned=False)
    assert "Call the tool again" in explain(gone, session_id="S", owned=True)
    limit = LimitExceeded("too many sessions", "sessions", 2.0, code=-32004)
    message = explain(limit, session_id=None, owned=False)
    assert "Retry in 2 s" in message
    assert "session_close" in message
    with pytest.raises(ToolError, match=r"^session_not_found"), translated("S"):
        raise gone


def test_settings_come_from_flags_then_environment_then_defaults() -> None:
    env = {
        "CODEBEAKER_URL": "ws://h:1/ws/jsonrpc",
        "CODEBEAKER_API_KEY": "k",
        "CODEBEAKER_MCP_WAIT_SECONDS": "12",
        "CODEBEAKER_MCP_OUTPUT_BUDGET": "5000",
    }
    settings = Settings.from_env(env, wait_seconds=5.0, url=None)
    assert settings.url == "ws://h:1/ws/jsonrpc"
    assert settings.api_key == "k"
    assert settings.wait_seconds == 5.0
    assert settings.budget == 5000
    assert settings.transport == "stdio"
    assert Settings.from_env({}).url is None
    with pytest.raises(ValueError, match="wait seconds"):
        Settings.from_env({}, wait_seconds=0.0)
    with pytest.raises(ValueError, match="budget"):
        Settings.from_env({}, budget=10)


def test_the_command_registers_mcp_with_its_flags() -> None:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        ["mcp", "--transport", "http", "--port", "9000", "--wait-seconds", "7"]
    )
    assert args.transport == "http"
    assert args.port == 9000
    assert args.wait_seconds == 7.0
    assert args.url is None
    assert callable(args.handler)


def test_a_file_is_read_as_an_image_as_text_pages_or_described() -> None:
    png = b"\x89PNG\r\n\x1a\n" + b"\0" * 32
    output, images = file_output("a.png", png, 1, None, 1000)
    assert output.kind == "image"
    assert output.mime == "image/png"
    assert [image.data for image in images] == [base64.b64encode(png).decode()]

    output, images = file_output("a.bin", b"\x7fELF\0\0\0", 1, None, 1000)
    assert output.kind == "binary"
    assert output.content is None
    assert images == []

    text = "".join(f"line {n}\n" for n in range(1, 6)).encode()
    output, images = file_output("a.txt", text, 2, 2, 1000)
    assert (output.kind, output.content) == ("text", "line 2\nline 3\n")
    assert (output.first_line, output.last_line, output.total_lines) == (2, 3, 5)
    assert output.next_offset == 4
    assert output.note is not None
    assert "offset=4" in output.note


def test_a_long_listing_shows_its_first_entries() -> None:
    entries = [
        DirectoryEntry(
            name=f"f{n:03}", path=f"/workspace/f{n:03}", type="file", size=n, modified_at="t"
        )
        for n in range(120)
    ]
    output = listing_output(".", entries, 1000)
    assert (output.count, output.shown, len(output.entries)) == (120, 50, 50)
    assert output.entries[0].name == "f000"
    assert output.note is not None
    assert listing_output(".", entries[:3], 1000).note is None
