"""The code-context kernel without Docker: its pure parts, and the real interpreter
process driven over its two pipes by a stand-in for the agent."""

from __future__ import annotations

import base64
import linecache
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from codebeaker.sandbox import kernel
from codebeaker.sandbox.frames import Header, decode, encode

KERNEL = Path(kernel.__file__)


class Picture:
    def _repr_png_(self) -> bytes:
        return b"\x89PNG-data"

    def _repr_html_(self) -> str:
        return "<img>"

    def __repr__(self) -> str:
        return "Picture()"


class Broken:
    def _repr_html_(self) -> str:
        raise RuntimeError("no html today")

    def __repr__(self) -> str:
        raise ValueError("no repr either")


class Bundled:
    def _repr_mimebundle_(self, **kwargs: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        return {"text/markdown": "**b**", "application/json": {"k": [1, 2]}}, {}


def test_a_bundle_holds_every_representation_offered() -> None:
    data, truncated = kernel.mime_bundle(Picture(), 1000)
    assert data == {
        "text/html": "<img>",
        "image/png": base64.b64encode(b"\x89PNG-data").decode(),
        "text/plain": "Picture()",
    }
    assert truncated is False
    bundled, _ = kernel.mime_bundle(Bundled(), 1000)
    assert bundled["text/markdown"] == "**b**"
    assert bundled["application/json"] == {"k": [1, 2]}


def test_classes_and_broken_reprs_do_not_break_the_bundle() -> None:
    data, _ = kernel.mime_bundle(Picture, 1000)  # the class: its methods want an instance
    assert set(data) == {"text/plain"}
    broken, _ = kernel.mime_bundle(Broken(), 1000)
    assert broken == {"text/plain": "<repr failed: ValueError: no repr either>"}


def test_large_representations_are_cut_or_left_out() -> None:
    data, truncated = kernel.mime_bundle("x" * 5000, 100)
    assert truncated is True
    assert data["text/plain"] == "'" + "x" * 99 + "…"

    class Huge:
        def _repr_png_(self) -> bytes:
            return b"p" * 1000

        def _repr_json_(self) -> list[int]:
            return list(range(1000))

    data, truncated = kernel.mime_bundle(Huge(), 200)
    assert truncated is True
    assert "image/png" not in data
    assert "application/json" not in data


def test_errors_start_at_the_cell_and_show_its_lines() -> None:
    code = "def f():\n    return 1 / 0\nf()"
    filename = "<cell 9>"
    linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
    try:
        exec(compile(code, filename, "exec"), {})
    except ZeroDivisionError as exc:
        error = kernel.describe_error(exc, 10_000)
    assert error["name"] == "ZeroDivisionError"
    assert error["traceback"].splitlines()[1] == '  File "<cell 9>", line 3, in <module>'
    assert "return 1 / 0" in error["traceback"]
    assert "test_kernel" not in error["traceback"]


def test_a_missing_module_says_what_the_image_has() -> None:
    try:
        import not_a_module_here  # type: ignore[import-not-found]  # noqa: F401
    except ModuleNotFoundError as exc:
        error = kernel.describe_error(exc, 100_000)
    assert "cannot install packages" in error["value"]
    assert "pytest" in error["value"]  # this environment's packages are listed
    assert "cannot install packages" in error["traceback"]
    numpy = ModuleNotFoundError("No module named 'numpy'", name="numpy")
    hint = kernel.packages_hint("numpy.linalg")
    assert ("python-data" in hint) == ("numpy " not in hint)
    assert kernel.describe_error(numpy, 100_000)["name"] == "ModuleNotFoundError"


# --------------------------------------------------------------------------- the process


class FakeAgent:
    """Starts kernel.py as the agent does (pipes as argv) and answers it as the agent
    does: displays acknowledged, input from ``stdin`` when the cell streams."""

    def __init__(self) -> None:
        to_read, self.to_kernel = os.pipe()
        self.from_kernel, from_write = os.pipe()
        self.process = subprocess.Popen(
            [sys.executable, "-u", str(KERNEL), str(to_read), str(from_write)],
            pass_fds=(to_read, from_write),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        os.close(to_read)
        os.close(from_write)
        self.buffer = bytearray()

    def receive(self) -> tuple[Header, bytes]:
        while True:
            for frame in decode(self.buffer):
                return frame
            data = os.read(self.from_kernel, 1 << 16)
            assert data, "the kernel closed its channel"
            self.buffer += data

    def run(self, code: str, stdin: bytes | None = None) -> tuple[Header, list[dict[str, Any]]]:
        frame = {"t": "run", "item_limit": 10_000, "interactive": stdin is not None}
        os.write(self.to_kernel, encode(frame, code.encode()))
        shown: list[dict[str, Any]] = []
        while True:
            header, body = self.receive()
            if header["t"] == "display":
                shown.append({"kind": header["kind"], "body": body.decode()})
                os.write(self.to_kernel, encode({"t": "shown", "seq": header["seq"]}))
            elif header["t"] == "read":
                reply = {"t": "stdin", "count": header["count"], "eof": True}
                os.write(self.to_kernel, encode(reply, stdin or b""))
            elif header["t"] == "done":
                return header, shown

    def close(self) -> None:
        os.close(self.to_kernel)
        os.close(self.from_kernel)
        self.process.kill()
        self.process.wait()
        for stream in (self.process.stdout, self.process.stderr):
            assert stream is not None
            stream.close()


@pytest.fixture
def agent() -> Iterator[FakeAgent]:
    fake = FakeAgent()
    ready, _ = fake.receive()
    assert ready == {"t": "ready", "pid": fake.process.pid}
    try:
        yield fake
    finally:
        fake.close()


def test_state_values_and_counts(agent: FakeAgent) -> None:
    done, shown = agent.run("x = 41")
    assert done == {"t": "done", "count": 1, "status": "ok", "error": None}
    assert shown == []
    done, shown = agent.run("x + 1")
    assert done["count"] == 2
    assert shown == [{"kind": "result", "body": '{"text/plain": "42"}'}]
    _, shown = agent.run("_ * 2")  # the last value, as in the REPL
    assert shown[0]["body"] == '{"text/plain": "84"}'
    _, shown = agent.run("import asyncio\nawait asyncio.sleep(0)\n'awaited'")
    assert shown[0]["body"] == '{"text/plain": "\'awaited\'"}'
    _, shown = agent.run("display(1, 'two')\nNone")
    assert [item["kind"] for item in shown] == ["display", "display"]


def test_input_reads_what_the_agent_gives_and_then_eof(agent: FakeAgent) -> None:
    _, shown = agent.run("a = input()\nb = input('more? ') if False else ''\na", b"typed\n")
    assert shown[0]["body"] == '{"text/plain": "\'typed\'"}'
    done, _ = agent.run("input()")  # not streamed: EOF at once
    assert done["error"]["name"] == "EOFError"
    assert "kernel.py" not in done["error"]["traceback"]  # raised in the kernel's stdin
    assert '<cell 2>", line 1' in done["error"]["traceback"]


def test_an_interrupt_stops_the_cell_and_keeps_state(agent: FakeAgent) -> None:
    agent.run("kept = 'yes'")
    cell = encode({"t": "run", "item_limit": 100}, b"import time\ntime.sleep(30)")
    os.write(agent.to_kernel, cell)
    time.sleep(0.3)
    started = time.monotonic()
    os.kill(agent.process.pid, signal.SIGINT)
    done, _ = agent.receive()
    assert time.monotonic() - started < 2
    assert done["error"]["name"] == "KeyboardInterrupt"
    os.kill(agent.process.pid, signal.SIGINT)  # between cells: ignored
    _, shown = agent.run("kept")
    assert shown[0]["body"] == '{"text/plain": "\'yes\'"}'


def test_sys_exit_reports_then_ends_the_interpreter(agent: FakeAgent) -> None:
    os.write(agent.to_kernel, encode({"t": "run", "item_limit": 100}, b"raise SystemExit(3)"))
    done, _ = agent.receive()
    assert done["exiting"] is True
    assert done["error"]["name"] == "SystemExit"
    assert agent.process.wait(5) == 3
