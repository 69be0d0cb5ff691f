"""The ``codebeaker`` command line against the real server: ``run``, ``exec`` and ``sessions``,
with the program's exit code as its own."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from .conftest import SessionFactory


async def codebeaker(server: str, *args: str, stdin: str = "") -> tuple[int, str, str]:
    """Exit code, stdout and stderr of ``codebeaker ARGS`` pointed at the test server."""
    env = {**os.environ, "CODEBEAKER_URL": server + "/ws/jsonrpc"}
    env.pop("CODEBEAKER_API_KEY", None)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "codebeaker_client.cli",
        *args,
        env=env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(stdin.encode()), 120)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


async def test_run_a_file(server: str, tmp_path: Path) -> None:
    program = tmp_path / "hello.py"
    program.write_text(
        "import sys\nprint('hi', input())\nprint('oops', file=sys.stderr)\nsys.exit(3)\n"
    )
    code, out, err = await codebeaker(server, "run", str(program), "--stdin", stdin="ada\n")
    assert (code, out, err) == (3, "hi ada\n", "oops\n")
    broken = tmp_path / "main.c"
    broken.write_text("int main( { return 0; }\n")
    code, _, err = await codebeaker(server, "run", str(broken))
    assert code != 0
    assert "error" in err
    code, _, err = await codebeaker(server, "run", str(tmp_path / "x.rb"))
    assert code == 2
    assert "--language" in err


async def test_exec_and_sessions(server: str, make_session: SessionFactory) -> None:
    sid = (await make_session("python"))["sessionId"]
    code, out, err = await codebeaker(
        server, "exec", "--session", sid, "--", "sh", "-c", "echo out; exit 5"
    )
    assert (code, out) == (5, "out\n"), err
    code, out, err = await codebeaker(
        server, "exec", "-s", sid, "--stdin", "--", "cat", stdin="fed"
    )
    assert (code, out) == (0, "fed"), err
    code, out, err = await codebeaker(server, "exec", "-s", sid, "--timeout", "5", "--", "cat")
    assert (code, out) == (0, ""), err  # stdin is closed, not left open to hang
    code, out, _ = await codebeaker(server, "sessions")
    assert code == 0
    assert sid in out
    code, out, _ = await codebeaker(server, "sessions", "close", sid)
    assert (code, out) == (0, f"closed {sid}\n")
    code, _, err = await codebeaker(server, "exec", "-s", sid, "--", "true")
    assert code == 2
    assert "session not found" in err
