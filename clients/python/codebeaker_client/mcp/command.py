"""``codebeaker mcp``: the command line of the MCP server.

``register`` is the ``codebeaker.commands`` entry point; ``main`` serves
``python -m codebeaker_client.mcp``. Neither imports the ``mcp`` package until the server
starts, so ``codebeaker --help`` works without the optional ``mcp`` extra.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TypeAlias

from codebeaker_client.mcp.settings import (
    DEFAULT_BUDGET,
    DEFAULT_HTTP_PORT,
    DEFAULT_LANGUAGE,
    DEFAULT_WAIT_SECONDS,
    Settings,
)

__all__ = ["add_arguments", "main", "register"]

Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"

DESCRIPTION = (
    "Serve CodeBeaker as Model Context Protocol tools (run code, shell, files, sessions) "
    "to an MCP client, over stdio (default) or Streamable HTTP."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url",
        help="CodeBeaker JSON-RPC endpoint (default: $CODEBEAKER_URL or "
        "ws://127.0.0.1:5000/ws/jsonrpc)",
    )
    parser.add_argument("--api-key", help="CodeBeaker API key (default: $CODEBEAKER_API_KEY)")
    parser.add_argument(
        "--transport", choices=("stdio", "http"), default="stdio", help="default: stdio"
    )
    parser.add_argument("--host", default="127.0.0.1", help="http: bind address")
    parser.add_argument(
        "--port", type=int, default=DEFAULT_HTTP_PORT, help=f"http: port ({DEFAULT_HTTP_PORT})"
    )
    parser.add_argument(
        "--wait-seconds",
        type=float,
        help="how long shell/execute_code/process_output wait before answering 'still "
        f"running' (default: $CODEBEAKER_MCP_WAIT_SECONDS or {DEFAULT_WAIT_SECONDS:g})",
    )
    parser.add_argument(
        "--output-budget",
        type=int,
        dest="budget",
        help="characters of output per tool result before the middle is cut "
        f"(default: $CODEBEAKER_MCP_OUTPUT_BUDGET or {DEFAULT_BUDGET})",
    )
    parser.add_argument(
        "--language",
        help="language of the session each client gets without asking "
        f"(default: $CODEBEAKER_MCP_LANGUAGE or {DEFAULT_LANGUAGE})",
    )


def register(commands: Commands) -> None:
    """Add ``mcp`` to the ``codebeaker`` command line (``commands`` is its subparsers)."""
    parser = commands.add_parser(
        "mcp", help="serve CodeBeaker to MCP clients", description=DESCRIPTION
    )
    add_arguments(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    try:
        settings = Settings.from_env(
            url=args.url,
            api_key=args.api_key,
            transport=args.transport,
            host=args.host,
            port=args.port,
            wait_seconds=args.wait_seconds,
            budget=args.budget,
            language=args.language,
        )
    except ValueError as exc:
        print(f"codebeaker mcp: {exc}", file=sys.stderr)
        return 2
    try:
        from codebeaker_client.mcp.server import serve
    except ImportError as exc:
        print(
            f"codebeaker mcp needs the mcp package ({exc}): pip install 'codebeaker-client[mcp]'",
            file=sys.stderr,
        )
        return 1
    serve(settings)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="codebeaker mcp", description=DESCRIPTION)
    add_arguments(parser)
    return run(parser.parse_args(argv))
