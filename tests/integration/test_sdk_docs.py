"""Every Python example in docs/sdk.md and the README's SDK example, run as written against a
real server (``CODEBEAKER_URL`` points them at it), checked against the output they promise."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)
PROMISE = re.compile(r"print\((.*)\)\s+# (.+)$")


def examples(path: Path) -> list[str]:
    return BLOCK.findall(path.read_text())


SDK_EXAMPLES = examples(ROOT / "docs" / "sdk.md")
README_EXAMPLES = examples(ROOT / "README.md")


def promised(code: str) -> list[str]:
    """What the example's ``print(...)  # comment`` lines say they print, in order."""
    return [match.group(2).strip() for line in code.splitlines() if (match := PROMISE.search(line))]


async def run_example(code: str, server: str, *, fails: bool = False) -> str:
    """What the example printed (its stderr instead when it is expected to fail)."""
    env = {**os.environ, "CODEBEAKER_URL": server + "/ws/jsonrpc"}
    env.pop("CODEBEAKER_API_KEY", None)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        code,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 120)
    if fails:
        assert process.returncode != 0, stdout.decode()
        return stderr.decode()
    assert process.returncode == 0, stderr.decode()
    return stdout.decode()


def test_there_are_examples() -> None:
    assert len(SDK_EXAMPLES) >= 5
    assert README_EXAMPLES, "the README shows the SDK"


@pytest.mark.parametrize("code", SDK_EXAMPLES + README_EXAMPLES)
async def test_example_runs_and_prints_what_it_says(code: str, server: str, driver: str) -> None:
    refused = driver == "exec" and "run_code" in code
    output = await run_example(code, server, fails=refused)
    if refused:  # the exec driver has no code contexts, and says so
        assert "ContextsUnsupported" in output, output
        return
    printed = iter(output.splitlines())
    for expected in promised(code):
        assert any(line.strip() == expected for line in printed), (expected, output)
