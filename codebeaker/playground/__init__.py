"""The playground: a page at ``GET /`` where a person edits and runs a program in the browser.

The page (``index.html``) loads its scripts and styles from ``/playground/…``, all served by
this server (``static/``: ``app.js``, ``style.css`` and the vendored CodeMirror 5 and xterm.js
under ``static/vendor/``, refreshed by ``scripts/vendor-frontend.sh``), so it works with no
network beyond the server. It lists the languages with ``GET /api/v1/languages`` and runs
programs over framing A (``/ws``, ``shared/spec/RUN.md``).
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

__all__ = ["PAGE_PATH", "STATIC_PREFIX", "routes"]

PAGE_PATH = "/"
STATIC_PREFIX = "/playground"
HERE = Path(__file__).resolve().parent
STATIC_DIR = HERE / "static"

SECURITY_HEADERS = {
    # Only this server's own scripts; styles also inline (CodeMirror and xterm.js set them
    # from script); connections only back to this server (its WebSocket included).
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; font-src 'self'; connect-src 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


@functools.cache
def _page() -> str:
    """index.html, its asset URLs tagged with a digest of the static files, so a browser
    never keeps a stale ``app.js`` next to a new page."""
    digest = hashlib.sha256()
    for path in sorted(STATIC_DIR.rglob("*")):
        if path.is_file():
            digest.update(path.relative_to(STATIC_DIR).as_posix().encode())
            digest.update(path.read_bytes())
    html = (HERE / "index.html").read_text(encoding="utf-8")
    return html.replace("{{asset_tag}}", digest.hexdigest()[:12])


async def page(request: Request) -> HTMLResponse:
    return HTMLResponse(_page(), headers=SECURITY_HEADERS)


def routes() -> list[BaseRoute]:
    """``GET /`` (the page) and ``/playground/…`` (its scripts and styles)."""
    return [
        Route(PAGE_PATH, page, methods=["GET"], name="playground_page"),
        Mount(STATIC_PREFIX, app=StaticFiles(directory=STATIC_DIR), name="playground"),
    ]
