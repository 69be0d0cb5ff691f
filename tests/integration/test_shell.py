"""execute_shell: argv without a shell, stdin/env/cwd, exit codes, timeouts, output caps."""

from __future__ import annotations

import json
import time

import pytest

from .client import RpcClient
from .conftest import (
    MIB,
    SessionFactory,
    escaping_tree,
    is_server_helper,
    leftover_user_processes,
    sandbox_processes,
)

RESULT_FIELDS = {"stdout", "stderr", "exitCode", "timedOut", "truncated"}


async def test_argv_is_not_a_shell(rpc: RpcClient, py_session: str) -> None:
    envelope = await rpc.shell(py_session, "echo", "a;b|c $(x) `y` && z > /tmp/nope *")
    assert envelope["success"] is True
    assert envelope["error"] is None
    result = envelope["result"]
    assert set(result) == RESULT_FIELDS, result
    assert result == {
        "stdout": "a;b|c $(x) `y` && z > /tmp/nope *\n",
        "stderr": "",
        "exitCode": 0,
        "timedOut": False,
        "truncated": False,
    }
    await rpc.failed(py_session, {"type": "read_file", "path": "/tmp/nope"}, "file_not_found")


async def test_args_keep_spaces_and_quotes(rpc: RpcClient, py_session: str) -> None:
    args = ["two words", "'single'", '"double"', "", "tab\there", "ünï"]
    envelope = await rpc.shell(
        py_session, "python3", "-c", "import sys, json; print(json.dumps(sys.argv[1:]))", *args
    )
    assert envelope["success"], envelope
    assert json.loads(envelope["result"]["stdout"]) == args


async def test_a_shell_on_request(rpc: RpcClient, py_session: str) -> None:
    envelope = await rpc.sh(py_session, "x=6; echo $((x*7)) | cat; echo err >&2")
    assert envelope["success"], envelope
    assert envelope["result"]["stdout"] == "42\n"
    assert envelope["result"]["stderr"] == "err\n"


async def test_stdin(rpc: RpcClient, py_session: str) -> None:
    text = "line one\nzwei ✓\n"
    envelope = await rpc.shell(py_session, "cat", stdin=text)
    assert envelope["result"]["stdout"] == text
    big = "0123456789abcdef" * 20000  # 320 kB
    envelope = await rpc.shell(py_session, "wc", "-c", stdin=big)
    assert envelope["result"]["stdout"].strip() == str(len(big))
    envelope = await rpc.shell(py_session, "cat", stdin=big)
    assert envelope["result"]["stdout"] == big


async def test_no_stdin_means_eof(rpc: RpcClient, py_session: str) -> None:
    started = time.monotonic()
    envelope = await rpc.shell(py_session, "cat", timeoutSeconds=20)
    assert envelope["success"], envelope
    assert envelope["result"]["stdout"] == ""
    assert envelope["result"]["timedOut"] is False
    assert time.monotonic() - started < 15


async def test_env(rpc: RpcClient, py_session: str) -> None:
    envelope = await rpc.sh(
        py_session,
        'printf "%s|%s" "$GREETING" "$OTHER"',
        env={"GREETING": "hi there", "OTHER": "x=y"},
    )
    assert envelope["result"]["stdout"] == "hi there|x=y", envelope
    # the env of one command does not stick to the session
    envelope = await rpc.sh(py_session, 'printf "%s" "${GREETING-unset}"')
    assert envelope["result"]["stdout"] == "unset"
    # nothing of the server's own environment leaks into the sandbox
    envelope = await rpc.shell(py_session, "env")
    assert "CODEBEAKER_INSTANCE" not in envelope["result"]["stdout"]
    assert "DOCKER_HOST" not in envelope["result"]["stdout"]


async def test_working_directory(rpc: RpcClient, py_session: str, workdir: str) -> None:
    default = await rpc.shell(py_session, "pwd")
    assert default["result"]["stdout"] == "/workspace\n"
    await rpc.ok(py_session, {"type": "create_directory", "path": f"{workdir}/wd/sub"})
    relative = workdir.removeprefix("/workspace/") + "/wd/sub"
    nested = await rpc.shell(py_session, "pwd", workingDirectory=relative)
    assert nested["result"]["stdout"] == f"{workdir}/wd/sub\n"
    absolute = await rpc.shell(py_session, "pwd", working_directory="/tmp")
    assert absolute["result"]["stdout"] == "/tmp\n"
    missing = await rpc.shell(py_session, "pwd", workingDirectory=f"{workdir}/missing")
    assert missing["success"] is False, missing


async def test_nonzero_exit(rpc: RpcClient, py_session: str) -> None:
    envelope = await rpc.sh(py_session, "echo out; echo err >&2; exit 3")
    assert envelope["success"] is False
    assert envelope["error"].startswith("nonzero_exit:"), envelope
    assert envelope["result"] == {
        "stdout": "out\n",
        "stderr": "err\n",
        "exitCode": 3,
        "timedOut": False,
        "truncated": False,
    }
    false = await rpc.shell(py_session, "false")
    assert false["success"] is False
    assert false["result"]["exitCode"] == 1


async def test_command_not_found(rpc: RpcClient, py_session: str) -> None:
    envelope = await rpc.shell(py_session, "definitely-not-a-command-xyz", "arg")
    assert envelope["success"] is False
    assert envelope["error"].startswith("command_not_found:"), envelope
    assert envelope["result"]["exitCode"] == 127
    assert envelope["result"]["timedOut"] is False
    # the session is fine afterwards
    assert (await rpc.shell(py_session, "echo", "ok"))["result"]["stdout"] == "ok\n"


async def test_invalid_utf8_output_is_replaced(rpc: RpcClient, py_session: str) -> None:
    envelope = await rpc.sh(py_session, r"printf '\377abc'; printf 'x\376' >&2")
    assert envelope["success"], envelope
    assert envelope["result"]["stdout"] == "\ufffdabc"
    assert envelope["result"]["stderr"] == "x\ufffd"


@pytest.mark.timeout(60)
async def test_timeout_returns_partial_output(rpc: RpcClient, py_session: str) -> None:
    started = time.monotonic()
    envelope = await rpc.sh(
        py_session, "echo before; echo err-before >&2; sleep 30", timeoutSeconds=1
    )
    elapsed = time.monotonic() - started
    assert elapsed < 15, f"a 1 s timeout took {elapsed:.1f}s"
    assert envelope["success"] is False
    assert envelope["error"].startswith("timeout:"), envelope
    result = envelope["result"]
    assert result["timedOut"] is True
    assert result["exitCode"] == 124
    assert result["stdout"] == "before\n"
    assert result["stderr"] == "err-before\n"
    assert envelope["durationMs"] >= 900
    assert await leftover_user_processes(rpc, py_session) == []


@pytest.mark.timeout(90)
async def test_timeout_kills_the_whole_tree(rpc: RpcClient, make_session: SessionFactory) -> None:
    created = await make_session("python")
    sid = created["sessionId"]
    script = escaping_tree("echo started; sleep 30")
    envelope = await rpc.sh(sid, script, timeoutSeconds=2)
    assert envelope["result"]["timedOut"] is True, envelope
    assert envelope["result"]["exitCode"] == 124
    assert envelope["result"]["stdout"] == "started\n"
    leftovers = await leftover_user_processes(rpc, sid)
    assert leftovers == [], f"processes survived the timeout: {leftovers}"

    # PID 1 and the keep-alive are still there, beside the server's own helper, none of
    # them the sandbox user's; the session goes on working
    rows = [row for row in await sandbox_processes(rpc, sid) if not is_server_helper(row)]
    assert any(row["pid"] == 1 for row in rows), rows
    assert any(row["cmd"].startswith("sleep ") and row["uid"] == 65534 for row in rows), rows
    assert all(row["uid"] != 1000 for row in rows), rows
    assert (await rpc.shell(sid, "echo", "alive"))["result"]["stdout"] == "alive\n"


@pytest.mark.timeout(90)
async def test_output_flood_is_cut_and_killed(rpc: RpcClient, py_session: str) -> None:
    started = time.monotonic()
    envelope = await rpc.shell(py_session, "yes", timeoutSeconds=60, timeout=80)
    elapsed = time.monotonic() - started
    assert elapsed < 30, f"`yes` ran {elapsed:.1f}s; it should be killed at the output cap"
    result = envelope["result"]
    assert result["truncated"] is True, {**result, "stdout": result["stdout"][:50]}
    assert result["timedOut"] is False
    assert envelope["success"] is False
    assert envelope["error"].startswith("output_limit_exceeded:"), envelope["error"]
    size = len(result["stdout"].encode())
    assert 0 < size <= MIB, size
    assert set(result["stdout"][:1000]) <= {"y", "\n"}
    assert await leftover_user_processes(rpc, py_session) == []


@pytest.mark.timeout(90)
async def test_stderr_flood_is_cut(rpc: RpcClient, py_session: str) -> None:
    envelope = await rpc.sh(py_session, "echo fine; yes err >&2", timeoutSeconds=60, timeout=80)
    result = envelope["result"]
    assert result["truncated"] is True
    assert envelope["success"] is False
    assert envelope["error"].startswith("output_limit_exceeded:"), envelope["error"]
    assert 0 < len(result["stderr"].encode()) <= MIB
    assert result["stdout"] == "fine\n"
    assert await leftover_user_processes(rpc, py_session) == []


async def test_large_output_under_the_cap_is_whole(rpc: RpcClient, py_session: str) -> None:
    envelope = await rpc.sh(py_session, "head -c 600000 /dev/zero | tr '\\0' x")
    assert envelope["success"], {**envelope, "result": None}
    assert envelope["result"]["truncated"] is False
    assert envelope["result"]["stdout"] == "x" * 600000
