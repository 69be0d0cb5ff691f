"""The ``codebeaker`` command line: ``run``, ``exec``, ``sessions`` and ``mcp`` against a running
server. Installed packages add their own commands through the entry point group
``codebeaker.commands`` (the server adds ``serve`` and ``images``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import entry_points

from codebeaker_client import commands as client_commands
from codebeaker_client import mcp

__all__ = ["main"]

Handler = Callable[[argparse.Namespace], int]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="codebeaker", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    client_commands.register(commands)
    mcp.register(commands)
    for plugin in entry_points(group="codebeaker.commands"):
        plugin.load()(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    handler: Handler = args.handler
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
