"""The Python SDK against the real server: sync and async clients, processes with stdin,
cancel, reconnect after the server drops the socket, reattach by id, files round trips."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from codebeaker_client import (
    AsyncCodeBeaker,
    AsyncSession,
    CodeBeaker,
    CommandFailed,
    CommandTimeout,
    ConnectionLost,
    InvalidParams,
    SessionNotFound,
    Unauthorized,
    errors,
)

from .conftest import MIB, ServerFactory


def ws_url(server: str) -> str:
    return server + "/ws/jsonrpc"


@pytest.fixture
def sync_client(server: str) -> Iterator[CodeBeaker]:
    with CodeBeaker(ws_url(server)) as client:
        yield client


@pytest.fixture
async def client(server: str) -> AsyncIterator[AsyncCodeBeaker]:
    async with AsyncCodeBeaker(ws_url(server)) as client:
        yield client


@pytest.fixture
async def session(client: AsyncCodeBeaker) -> AsyncIterator[AsyncSession]:
    async with client.create_session("python") as session:
        yield session


def test_sync_exec_results_and_check(sync_client: CodeBeaker) -> None:
    with sync_client.create_session("py") as session:
        assert session.language == "python"
        hello = session.exec("echo hi; echo oops >&2; exit 3")
        assert (hello.stdout, hello.stderr, hello.exit_code) == ("hi\n", "oops\n", 3)
        assert not hello.ok
        assert not hello.timed_out
        assert hello.duration_ms >= 0
        argv = session.exec(["printf", "%s|", "a b", "$HOME"], cwd="/tmp", env={"X": "1"})
        assert argv.stdout == "a b|$HOME|"
        assert argv.ok
        assert session.exec("cat", stdin="fed").stdout == "fed"
        with pytest.raises(CommandFailed) as failed:
            session.exec(["false"], check=True)
        assert failed.value.result is not None
        assert failed.value.result.exit_code == 1
        assert failed.value.retryable is False
        slow = session.exec("sleep 5", timeout=0.5)
        assert slow.timed_out
        assert slow.exit_code == 124
        with pytest.raises(CommandTimeout):
            session.exec("sleep 5", timeout=0.5, check=True)
        session_id = session.id
    ids = [summary.session_id for summary in sync_client.list_sessions()]
    assert session_id not in ids, "the with block closes the session"


def test_sync_one_shot_and_bad_params(sync_client: CodeBeaker) -> None:
    run = sync_client.run("python", "print(input()[::-1])", stdin="olleh")
    assert run.stdout == "hello\n"
    assert run.exit_code == 0
    with pytest.raises(InvalidParams) as bad:
        sync_client.create_session("python", memory_limit_mb=1)
    assert bad.value.errors[0].loc == ["memoryLimitMB"], bad.value.errors
    with pytest.raises(InvalidParams) as over:
        sync_client.create_session("python", memory_limit_mb=10**7)
    assert over.value.errors[0].loc == ["memoryLimitMB"], over.value.errors
    assert "server maximum" in over.value.errors[0].msg
    with pytest.raises(errors.UnsupportedLanguage) as unsupported:
        sync_client.run("cobol", "")
    assert "python" in unsupported.value.supported


def test_sync_spawn_iterates_output(sync_client: CodeBeaker) -> None:
    with sync_client.create_session("python") as session:
        process = session.spawn("for i in 1 2 3; do echo line$i; sleep 0.2; done")
        chunks = [chunk.data for chunk in process if chunk.stream == "stdout"]
        assert "".join(chunks) == "line1\nline2\nline3\n"
        assert process.wait().ok


async def test_spawn_stdin_conversation(session: AsyncSession) -> None:
    process = await session.spawn(
        ["python3", "-u", "-c", "import sys\nfor line in sys.stdin: print(line.upper(), end='')"]
    )
    assert await process.write("hello\n") == 6
    first = await asyncio.wait_for(process.__anext__(), 30)
    assert (first.stream, first.data) == ("stdout", "HELLO\n")
    await process.write("again\n")
    await process.close_stdin()
    rest = "".join([chunk.data async for chunk in process])
    result = await process.wait()
    assert result.ok
    assert result.stdout == "HELLO\nAGAIN\n"
    assert rest == "AGAIN\n"
    with pytest.raises(errors.InputClosed):
        await process.write("too late\n")


async def test_input_goes_to_its_own_process(session: AsyncSession) -> None:
    first = await session.spawn("read line; echo first:$line")
    second = await session.spawn("read line; echo second:$line")
    await second.write("b\n")
    await first.write("a\n")
    assert (await first.wait()).stdout == "first:a\n"
    assert (await second.wait()).stdout == "second:b\n"


async def test_two_clients_of_one_session_keep_their_processes_apart(
    server: str, session: AsyncSession
) -> None:
    async with AsyncCodeBeaker(ws_url(server)) as other_client:
        other = await other_client.get_session(session.id)
        mine = await session.spawn("read line; echo mine:$line")
        theirs = await other.spawn("read line; echo theirs:$line; sleep 30")
        await other.cancel(theirs.id)  # their cancel stops theirs only
        await mine.write("a\n")
        assert (await mine.wait()).stdout == "mine:a\n"
        assert (await theirs.wait()).cancelled


async def test_cancel_stops_the_tree_and_the_next_command_runs(session: AsyncSession) -> None:
    process = await session.spawn("sleep 300 & sleep 300; echo never")
    await asyncio.sleep(0.5)
    started = time.monotonic()
    result = await process.cancel()
    assert result.cancelled
    assert not result.ok
    assert "never" not in result.stdout
    assert time.monotonic() - started < 5
    quick = await session.exec("pgrep -u 1000 -x sleep || echo none")
    assert quick.stdout.strip() == "none", quick
    queued = await session.spawn("echo queued")
    assert (await queued.wait()).stdout == "queued\n"
    assert await session.cancel() == []


async def test_dropped_socket_keeps_partial_output_and_reconnects(
    client: AsyncCodeBeaker, session: AsyncSession
) -> None:
    process = await session.spawn("echo before; sleep 2; echo after")
    first = await asyncio.wait_for(process.__anext__(), 30)
    assert first.data == "before\n"
    # A frame over twice the server's message limit makes the server close the socket.
    await client.connection.send_frame("x" * (33 * MIB))
    with pytest.raises(ConnectionLost) as lost:
        await asyncio.wait_for(process.wait(), 30)
    assert lost.value.partial is not None
    assert lost.value.partial.stdout == "before\n"
    assert lost.value.sent
    assert not lost.value.retryable  # it was sent: it may have run (it did)
    with pytest.raises(ConnectionLost):  # a cut-short stream never looks finished
        async for _ in process:
            pass
    # The next call reconnects by itself; the session lived on and finished the command.
    await asyncio.sleep(2.5)
    assert (await session.exec("echo back")).stdout == "back\n"
    assert client.connection.reconnects == 1


async def test_reattach_by_id(server: str) -> None:
    async with (
        AsyncCodeBeaker(ws_url(server)) as first,
        first.create_session("python") as session,
    ):
        await session.files.write("note.txt", "kept")
        session_id = session.detach()
    async with AsyncCodeBeaker(ws_url(server)) as second:
        again = await second.get_session(session_id)
        assert again.language == "python"
        assert await again.files.read_text("note.txt") == "kept"
        await again.close()
        with pytest.raises(SessionNotFound) as gone:
            await second.get_session(session_id)
        assert gone.value.retryable is False
        with pytest.raises(SessionNotFound):
            await again.exec("true")


async def test_files_round_trip_a_directory(session: AsyncSession, tmp_path: Path) -> None:
    source = tmp_path / "src"
    (source / "nested" / "deeper").mkdir(parents=True)
    (source / "empty").mkdir()
    files = {
        "all-bytes.bin": bytes(range(256)) * 4,
        "nested/random.bin": os.urandom(5 * MIB + 3),  # more than one write
        "nested/deeper/.hidden": b"\x00\xff secret",
        "text.txt": "héllo\n".encode(),
        "zero": b"",
    }
    for name, data in files.items():
        (source / name).write_bytes(data)
    assert await session.files.upload(source, "tree") == len(files)
    listed = {entry.path for entry in await session.files.list("tree", recursive=True)}
    assert "/workspace/tree/nested/random.bin" in listed
    assert "/workspace/tree/nested/deeper/.hidden" not in listed  # hidden unless asked
    target = tmp_path / "back"
    assert await session.files.download("tree", target) == len(files)
    for name, data in files.items():
        assert (target / name).read_bytes() == data, name
    assert (target / "empty").is_dir()
    assert await session.files.read_text("tree/text.txt") == "héllo\n"
    assert await session.files.exists("tree/zero")
    await session.files.copy("tree/zero", "tree/copy")
    await session.files.remove("tree", recursive=True)
    assert not await session.files.exists("tree/copy")
    with pytest.raises(errors.FileError) as missing:
        await session.files.read_bytes("tree/zero")
    assert missing.value.command_kind == "file_not_found"
    with pytest.raises(errors.FileError) as outside:
        await session.files.write("../../etc/passwd", "x")
    assert outside.value.command_kind == "path_outside_workspace"


async def test_run_code_keeps_state(session: AsyncSession, driver: str) -> None:
    if driver == "exec":
        with pytest.raises(errors.ContextsUnsupported):
            await session.run_code("1 + 1")
        return
    assert (await session.run_code("x = 6 * 7\nx")).text == "42"
    seen: list[str] = []
    html = await session.run_code(
        "print('shown')\n"
        "class Table:\n"
        "    def _repr_html_(self): return '<b>x+1</b>'\n"
        "    def __repr__(self): return str(x + 1)\n"
        "Table()",
        on_output=lambda chunk: seen.append(chunk.data),
    )
    assert html.text == "43"
    assert html.results[0].html == "<b>x+1</b>"
    assert html.stdout == "shown\n"
    assert "".join(seen) == "shown\n"
    failed = await session.run_code("1 / 0")
    assert failed.status == "error"
    assert failed.error is not None
    assert failed.error.name == "ZeroDivisionError"
    assert failed.text is None
    other = await session.contexts.create()
    assert (await session.run_code("'x' in globals()", context=other.context_id)).text == "False"
    ids = {context.context_id for context in await session.contexts.list()}
    assert {"default", other.context_id} <= ids
    await session.contexts.close(other.context_id)
    with pytest.raises(errors.ContextNotFound):
        await session.run_code("1", context=other.context_id)


async def test_unauthorized_and_keys(start_server: ServerFactory) -> None:
    guarded = await start_server(CODEBEAKER_API_KEY="sdk-key", CODEBEAKER_POOL_SIZES="{}")
    async with AsyncCodeBeaker(ws_url(guarded.url), api_key="wrong") as refused:
        with pytest.raises(Unauthorized):
            await refused.list_sessions()
    async with AsyncCodeBeaker(ws_url(guarded.url), api_key="sdk-key") as allowed:
        assert await allowed.list_sessions() == []


async def test_unreachable_server_is_connection_lost() -> None:
    client = AsyncCodeBeaker("ws://127.0.0.1:9/ws/jsonrpc", reconnect_attempts=2)
    with pytest.raises(errors.Unreachable) as lost:
        await client.list_sessions()
    assert lost.value.sent is False
    assert lost.value.retryable
    assert "cannot connect" in str(lost.value)
    await client.close()


async def test_a_dropped_cell_keeps_what_it_printed(
    client: AsyncCodeBeaker, session: AsyncSession, driver: str
) -> None:
    seen: list[str] = []
    cell = asyncio.ensure_future(
        session.run_code(
            "import time\nprint('before', flush=True)\ntime.sleep(2)",
            on_output=lambda chunk: seen.append(chunk.data),
        )
    )
    if driver == "exec":
        with pytest.raises(errors.ContextsUnsupported):
            await cell
        return
    for _ in range(300):
        if seen:
            break
        await asyncio.sleep(0.1)
    await client.connection.send_frame("x" * (33 * MIB))  # the server closes the socket
    with pytest.raises(ConnectionLost) as lost:
        await asyncio.wait_for(cell, 30)
    assert lost.value.partial is not None
    assert lost.value.partial.stdout == "before\n"
