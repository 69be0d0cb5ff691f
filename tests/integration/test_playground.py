"""The playground at ``GET /`` in a real browser: Debian's chromium driven by Playwright.

The page is loaded from a real server, programs run in real sandboxes over framing A
(``/ws``), and input is typed as keyboard events into the xterm.js terminal. The browser is
``/usr/bin/chromium`` (``scripts/ensure-browser.sh`` installs it; Playwright never downloads
one). Without it the tests skip, except under ``CI=true``, where they fail.

``CODEBEAKER_SCREENSHOT=1`` saves ``docs/playground.png`` after the C run.
"""

from __future__ import annotations

import asyncio
import os
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path

import aiodocker
import pytest
from aiodocker.exceptions import DockerError
from playwright.async_api import Browser, Page, async_playwright

from .conftest import IMAGE_PREFIX, ServerProcess, stop_and_check

CHROMIUM = Path(os.environ.get("CODEBEAKER_CHROMIUM", "/usr/bin/chromium"))
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "playground.png"
WAIT_MS = 60_000
"""Longest wait for the terminal or a panel to show something (a compile included)."""

C_GREETER = r"""#include <stdio.h>

int main(void) {
    char name[64];
    printf("Name? ");
    fflush(stdout);
    if (scanf("%63s", name) != 1) {
        return 1;
    }
    printf("Hello, %s!\n", name);
    return 0;
}
"""

C_BROKEN = """#include <stdio.h>

int main(void) {
    puts("never printed")
    return 0;
}
"""

PY_SUM = """import sys

print("numbers, then Ctrl-D:", flush=True)
total = sum(int(line) for line in sys.stdin if line.strip())
print("sum", total)
print("bye", file=sys.stderr)
sys.exit(3)
"""


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
async def playground(docker: aiodocker.Docker) -> AsyncIterator[ServerProcess]:
    """A server of its own (default settings) serving the page."""
    for language in ("c", "python"):
        try:
            await docker.images.inspect(f"{IMAGE_PREFIX}/{language}:latest")
        except DockerError as exc:
            if exc.status != 404:
                raise
            pytest.fail(
                f"runtime image {IMAGE_PREFIX}/{language}:latest is missing; build it with "
                "`make images`",
                pytrace=False,
            )
    server = ServerProcess({})
    try:
        await server.start()
        yield server
    finally:
        await stop_and_check(docker, server)


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    if not CHROMIUM.exists():
        reason = (
            f"{CHROMIUM} is missing: install Debian's chromium with scripts/ensure-browser.sh "
            "(`make install` runs it)"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(CHROMIUM))
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def page(browser: Browser, playground: ServerProcess) -> AsyncIterator[Page]:
    """The playground, loaded, its languages listed; uncaught script errors fail the test."""
    # The page's CSP forbids eval; Playwright's wait_for_function needs it (test-side only).
    context = await browser.new_context(bypass_csp=True, viewport={"width": 1280, "height": 760})
    errors: list[str] = []
    try:
        opened = await context.new_page()
        opened.set_default_timeout(WAIT_MS)
        opened.on("pageerror", lambda error: errors.append(str(error)))
        await opened.goto(playground.http_url + "/")
        await opened.wait_for_function("() => window.playground && window.playground.ready")
        yield opened
    finally:
        await context.close()
    assert not errors, f"the page threw: {errors}"


# --------------------------------------------------------------------------- helpers


async def set_source(page: Page, source: str) -> None:
    await page.evaluate("(source) => window.playground.editor.setValue(source)", source)


async def terminal_text(page: Page) -> str:
    return str(await page.evaluate("() => window.playground.terminalText()"))


async def wait_for_terminal(page: Page, text: str) -> str:
    """The terminal's text once it shows ``text``."""
    try:
        await page.wait_for_function(
            "(text) => window.playground.terminalText().includes(text)", arg=text
        )
    except Exception as exc:
        status = await page.inner_text("#status")
        raise AssertionError(
            f"the terminal never showed {text!r} ({exc}); status {status!r}, "
            f"terminal:\n{await terminal_text(page)}"
        ) from exc
    return await terminal_text(page)


async def wait_until_idle(page: Page) -> None:
    """The run is over: its socket closed, Run enabled again."""
    await page.wait_for_function("() => !document.body.classList.contains('running')")


async def type_into_terminal(page: Page, *keys: str) -> None:
    """Real keyboard events on xterm.js: text is typed, names (``Enter``…) are pressed."""
    await page.click("#terminal")
    for key in keys:
        if key in ("Enter", "Backspace") or "+" in key:
            await page.keyboard.press(key)
        else:
            await page.keyboard.type(key)


# --------------------------------------------------------------------------- tests


def _get(url: str) -> tuple[int, str, bytes]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=10) as response:
        return response.status, response.headers.get("content-type", ""), response.read()


async def test_page_and_its_assets_are_served_by_the_server(playground: ServerProcess) -> None:
    status, kind, body = await asyncio.to_thread(_get, playground.http_url + "/")
    assert status == 200
    assert kind.startswith("text/html")
    html = body.decode()
    for element in ("language", "run", "stop", "status", "compile-output", "terminal"):
        assert f'id="{element}"' in html, element
    assert "http://" not in html  # nothing from elsewhere
    assert "https://" not in html
    for asset, wanted in (
        ("/playground/app.js", "javascript"),
        ("/playground/style.css", "text/css"),
        ("/playground/vendor/codemirror/codemirror.js", "javascript"),
        ("/playground/vendor/codemirror/mode/clike.js", "javascript"),
        ("/playground/vendor/xterm/xterm.js", "javascript"),
        ("/playground/vendor/xterm/xterm.css", "text/css"),
        ("/playground/vendor/xterm-addon-fit/addon-fit.js", "javascript"),
    ):
        assert f'"{asset}?v=' in html, asset
        status, kind, body = await asyncio.to_thread(_get, playground.http_url + asset)
        assert status == 200, asset
        assert wanted in kind, (asset, kind)
        assert body, asset


async def test_c_program_reads_a_line_typed_into_the_terminal(page: Page) -> None:
    await page.select_option("#language", "c")
    assert "main" in await page.evaluate("() => window.playground.editor.getValue()")  # sample
    assert await page.locator(".CodeMirror .cm-keyword").count() > 0  # highlighted
    await set_source(page, C_GREETER)
    await page.click("#run")

    await wait_for_terminal(page, "Name?")
    # A typo, rubbed out: only the line as sent reaches the program (and its echo the screen).
    await type_into_terminal(page, "Adx", "Backspace", "a", "Enter")
    text = await wait_for_terminal(page, "[exit 0]")
    await wait_until_idle(page)

    assert "Name? Ada\nHello, Ada!\n[exit 0]" in text, text
    assert "Adx" not in text, text
    assert await page.inner_text("#status") == "exit 0"
    compiler = await page.inner_text("#compile-output")
    assert "Compiled successfully" in compiler, compiler
    assert await page.is_enabled("#run")
    assert await page.is_disabled("#stop")
    if os.environ.get("CODEBEAKER_SCREENSHOT") == "1":
        await page.screenshot(path=str(SCREENSHOT))


async def test_c_compile_error_shows_in_the_compiler_panel(page: Page) -> None:
    await page.select_option("#language", "c")
    await set_source(page, C_BROKEN)
    await page.click("#run")

    await page.wait_for_selector("#compile-output.error")
    await wait_until_idle(page)
    compiler = await page.inner_text("#compile-output")
    assert "Compile error" in compiler, compiler
    assert "error:" in compiler, compiler
    assert "expected" in compiler, compiler  # gcc: expected ';' before 'return'
    text = await terminal_text(page)
    assert "expected" not in text, text  # not shown as the program's output
    assert "never printed" not in text, text
    assert await page.inner_text("#status") == "Compile error"


async def test_python_reads_until_ctrl_d_and_its_stderr_and_exit_code_show(page: Page) -> None:
    await page.select_option("#language", "python")
    await set_source(page, PY_SUM)
    await page.click("#run")

    await wait_for_terminal(page, "numbers, then Ctrl-D:")
    await type_into_terminal(page, "1", "Enter", "2", "Enter", "Control+d")
    text = await wait_for_terminal(page, "[exit 3]")
    await wait_until_idle(page)

    assert "numbers, then Ctrl-D:\n1\n2\nsum 3\nbye\n[exit 3]" in text, text
    assert await page.inner_text("#status") == "exit 3"
    assert "not compiled" in await page.inner_text("#compile-output")


async def test_stop_kills_a_running_program(page: Page) -> None:
    await page.select_option("#language", "python")
    await set_source(page, 'import time\nprint("waiting", flush=True)\ntime.sleep(600)\n')
    await page.click("#run")

    await wait_for_terminal(page, "waiting")
    await page.click("#stop")
    text = await wait_for_terminal(page, "[exit ")
    await wait_until_idle(page)
    status = await page.inner_text("#status")
    assert status.endswith(" · killed"), (status, text)
    assert f"[{status}]" in text, text
