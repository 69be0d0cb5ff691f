"""llm-sandbox (PyPI ``llm-sandbox[docker]``) running the same snippet, for scenario L.

Optional: ``pip install -e '.[bench]'``. It runs on the local CodeBeaker python image (nothing
is pulled) with its environment setup skipped (that would create a venv and reach PyPI), so
what is timed is its ``session.run(code)``: write the code into the container, run it.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import time
from typing import Any


def available() -> bool:
    return all(importlib.util.find_spec(name) for name in ("llm_sandbox", "docker"))


def version() -> str:
    return importlib.metadata.version("llm-sandbox")


def measure(
    image: str, code: str, expected: str, rounds: int, warmup: int, labels: dict[str, str]
) -> list[float]:
    """Milliseconds per ``session.run`` in one long-lived llm-sandbox session (blocking)."""
    from llm_sandbox import SandboxSession

    session: Any = SandboxSession(
        lang="python",
        image=image,
        keep_template=True,  # never delete our image
        skip_environment_setup=True,
        runtime_configs={"command": ["sleep", "infinity"], "labels": labels},
    )
    samples: list[float] = []
    with session:
        for i in range(warmup + rounds):
            started = time.perf_counter()
            result = session.run(code)
            if i >= warmup:
                samples.append((time.perf_counter() - started) * 1000)
            if result.exit_code != 0 or result.stdout != expected:
                raise RuntimeError(f"llm-sandbox: unexpected result {result!r}")
    return samples
