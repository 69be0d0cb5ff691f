"""``codebeaker serve`` and ``codebeaker images build``: the server's commands, plugged into the
SDK's ``codebeaker`` command line (entry point group ``codebeaker.commands``), which also
brings ``run``, ``exec``, ``sessions`` and ``mcp``."""

from __future__ import annotations

import argparse
import asyncio
import socket
from collections.abc import Awaitable, Callable, Sequence

import uvicorn

from codebeaker.logs import configure_logging
from codebeaker.serving import guarded_http, raise_nofile
from codebeaker.settings import get_settings

__all__ = ["register"]


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``serve`` and ``images`` to the ``codebeaker`` command line."""
    serve = commands.add_parser("serve", help="serve JSON-RPC, REST and the playground")
    serve.add_argument("--host", help="bind address (CODEBEAKER_HOST)")
    serve.add_argument("--port", type=int, help="port (CODEBEAKER_PORT)")
    serve.set_defaults(handler=lambda args: _serve(args.host, args.port))
    images = commands.add_parser("images", help="runtime images")
    images_commands = images.add_subparsers(dest="images_command", required=True)
    build = images_commands.add_parser("build", help="build missing or changed images")
    build.add_argument(
        "languages",
        nargs="*",
        help="only these languages, or `server` for the server's own image "
        "(default: every language; the server's image only when named)",
    )
    build.add_argument("--force", action="store_true", help="rebuild even when up to date")
    build.set_defaults(handler=lambda args: _build_images(args.languages, args.force))


class _Server(uvicorn.Server):
    """uvicorn closes every socket as its shutdown begins; interactive programs first get
    their grace period (seed 004), with the listening sockets already closed."""

    def __init__(self, config: uvicorn.Config, before: Callable[[], Awaitable[None]]) -> None:
        super().__init__(config)
        self._before = before

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()
        await self._before()
        await super().shutdown(sockets)


def _serve(host: str | None, port: int | None) -> int:
    from codebeaker.app import create_app

    settings = get_settings()
    updates = {"host": host, "port": port}  # the flags win, and the app sees them too
    settings = settings.model_copy(update={k: v for k, v in updates.items() if v is not None})
    configure_logging(settings.log_level, json=settings.log_json)
    raise_nofile(settings.max_connections)
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        http=guarded_http(settings.max_connections, settings.handshake_timeout_seconds),
        host=settings.host,
        port=settings.port,
        log_config=None,
        # Frames a bit over our own limit still reach us, so we can answer limit_exceeded.
        ws_max_size=settings.max_message_bytes * 2 + 4096,
        ws_ping_interval=20,
        ws_ping_timeout=20,
        timeout_graceful_shutdown=10,
    )
    _Server(config, before=app.state.service.stop_runs).run()
    return 0


def _build_images(languages: Sequence[str], force: bool) -> int:
    from codebeaker.images import build_images

    settings = get_settings()
    configure_logging(settings.log_level, json=settings.log_json)
    builds = asyncio.run(build_images(settings, list(languages) or None, force=force))
    for build in builds:
        print(f"{build.image:<32} {build.status:<11} {build.seconds:6.1f}s")
    return 0
