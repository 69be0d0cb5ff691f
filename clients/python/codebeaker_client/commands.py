"""``codebeaker run``, ``exec`` and ``sessions``: the SDK from a shell, against a running server.
The exit code is the program's; an error of the service itself prints one line and exits 2."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Final, TypeAlias

from codebeaker_client.client import AsyncCodeBeaker
from codebeaker_client.errors import CodeBeakerError, InputClosed

__all__ = ["register"]

EXTENSIONS: Final = {
    ".py": "python",
    ".js": "javascript",
    ".mjs": "javascript",
    ".go": "go",
    ".cs": "csharp",
    ".c": "c",
    ".cc": "cpp",
    ".cpp": "cpp",
    ".cxx": "cpp",
    ".java": "java",
}
"""The usual extension of each language the server ships; ``--language`` for anything else."""
FAILED: Final = 2
TIMED_OUT: Final = 124
INTERRUPTED: Final = 130

Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
Command: TypeAlias = Callable[[AsyncCodeBeaker, argparse.Namespace], Awaitable[int]]


def _connection_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", help="server WebSocket URL (CODEBEAKER_URL)")
    parser.add_argument("--api-key", help="API key (CODEBEAKER_API_KEY)")


def register(commands: Commands) -> None:
    run = commands.add_parser("run", help="run a source file in a throwaway sandbox")
    run.add_argument("file", type=Path)
    run.add_argument("--language", "-l", help="default: from the file's extension")
    run.add_argument("--stdin", action="store_true", help="give the program this stdin")
    run.add_argument("--timeout", type=float, help="seconds (default: the server's)")
    _connection_options(run)
    run.set_defaults(handler=lambda args: _main(args, _run))

    exec_ = commands.add_parser("exec", help="run a command in a session, streaming its output")
    exec_.add_argument("--session", "-s", required=True, help="session id")
    exec_.add_argument("--cwd", help="working directory (default /workspace)")
    exec_.add_argument("--timeout", type=float, help="seconds (default: the server's)")
    exec_.add_argument("--stdin", action="store_true", help="give the command this stdin")
    exec_.add_argument("argv", nargs=argparse.REMAINDER, help="-- program and arguments")
    _connection_options(exec_)
    exec_.set_defaults(handler=lambda args: _main(args, _exec))

    sessions = commands.add_parser("sessions", help="list sessions, or close one")
    sessions.add_argument("action", nargs="?", choices=("list", "close"), default="list")
    sessions.add_argument("session_id", nargs="?", help="with close: the session")
    _connection_options(sessions)
    sessions.set_defaults(handler=lambda args: _main(args, _sessions))


def _main(
    args: argparse.Namespace,
    command: Callable[[AsyncCodeBeaker, argparse.Namespace], Awaitable[int]],
) -> int:
    async def main() -> int:
        async with AsyncCodeBeaker(args.url, api_key=args.api_key) as client:
            return await command(client, args)

    try:
        return asyncio.run(main())
    except KeyboardInterrupt:
        return INTERRUPTED
    except (CodeBeakerError, OSError, ValueError) as exc:
        print(f"codebeaker: {exc}", file=sys.stderr)
        return FAILED


def _stdin(wanted: bool) -> str | None:
    return sys.stdin.read() if wanted else None


async def _run(client: AsyncCodeBeaker, args: argparse.Namespace) -> int:
    path: Path = args.file
    language = args.language or EXTENSIONS.get(path.suffix.lower())
    if language is None:
        raise ValueError(f"cannot tell the language of {path.name}: pass --language")
    code = await asyncio.to_thread(path.read_text)
    result = await client.run(language, code, stdin=_stdin(args.stdin), timeout=args.timeout)
    if result.compile is not None and result.compile.exit_code != 0:
        _write(result.compile.stdout, result.compile.stderr)
        return result.compile.exit_code
    _write(result.stdout, result.stderr)
    if result.timed_out:
        print(f"codebeaker: timed out after {result.duration_ms} ms", file=sys.stderr)
        return TIMED_OUT
    return result.exit_code


async def _exec(client: AsyncCodeBeaker, args: argparse.Namespace) -> int:
    argv = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
    if not argv:
        raise ValueError("nothing to run: codebeaker exec --session ID -- PROGRAM [ARGS…]")
    session = await client.get_session(args.session)
    process = await session.spawn(argv, cwd=args.cwd, timeout=args.timeout)
    with contextlib.suppress(InputClosed):  # it may be done already; else never left waiting
        await process.write(_stdin(args.stdin) or "", eof=True)
    try:
        async for chunk in process:
            stream = sys.stdout if chunk.stream == "stdout" else sys.stderr
            stream.write(chunk.data)
            stream.flush()
        result = await process.wait()
    except asyncio.CancelledError:  # Ctrl-C: the remote command stops too
        await asyncio.shield(process.cancel())
        raise
    if result.timed_out:
        print(f"codebeaker: timed out after {result.duration_ms} ms", file=sys.stderr)
        return TIMED_OUT
    if result.error and result.exit_code == 0:
        print(f"codebeaker: {result.error}", file=sys.stderr)
        return FAILED
    return result.exit_code


async def _sessions(client: AsyncCodeBeaker, args: argparse.Namespace) -> int:
    if args.action == "close":
        if not args.session_id:
            raise ValueError("sessions close needs a session id")
        session = await client.get_session(args.session_id)
        await session.close()
        print(f"closed {args.session_id}")
        return 0
    for summary in await client.list_sessions():
        print(
            f"{summary.session_id}  {summary.language:<12} {summary.state:<6}"
            f" {summary.execution_count:>5} runs  idle {summary.idle_minutes:.1f} min"
        )
    return 0


def _write(stdout: str, stderr: str) -> None:
    sys.stdout.write(stdout)
    sys.stdout.flush()
    sys.stderr.write(stderr)
    sys.stderr.flush()
