"""The languages CodeBeaker runs: one entry each, looked up by name or alias."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from codebeaker.exceptions import UnsupportedLanguageError

__all__ = ["RUNTIMES", "Runtime", "RuntimeRegistry"]


@dataclass(frozen=True)
class Runtime:
    """How to run one language. Adding a language is one of these plus one Dockerfile."""

    name: str
    """Canonical name; also the image name and the ``docker/runtimes/<name>`` directory."""
    aliases: tuple[str, ...]
    source_file: str
    """File ``execution.run`` writes the code to, inside ``/workspace``."""
    run: tuple[str, ...]
    compile: tuple[str, ...] | None = None
    """Compile argv, for compiled languages; the program runs only when it exits 0."""
    env: dict[str, str] = field(default_factory=dict)


class RuntimeRegistry:
    """Case-insensitive lookup by canonical name or alias."""

    def __init__(self, runtimes: Iterable[Runtime]) -> None:
        self._by_name: dict[str, Runtime] = {}
        self._lookup: dict[str, Runtime] = {}
        for runtime in runtimes:
            self._by_name[runtime.name] = runtime
            for key in (runtime.name, *runtime.aliases):
                key = key.lower()
                if key in self._lookup:
                    raise ValueError(f"language name {key!r} is registered twice")
                self._lookup[key] = runtime

    def get(self, language: str) -> Runtime:
        try:
            return self._lookup[language.strip().lower()]
        except KeyError:
            raise UnsupportedLanguageError(language, self.names()) from None

    def names(self) -> list[str]:
        return sorted(self._by_name)

    def __iter__(self) -> Iterator[Runtime]:
        return iter(self._by_name.values())

    def __len__(self) -> int:
        return len(self._by_name)


RUNTIMES = RuntimeRegistry(
    [
        Runtime(
            name="python",
            aliases=("py", "python3"),
            source_file="main.py",
            run=("python3", "-u", "main.py"),
        ),
        Runtime(
            name="javascript",
            aliases=("js", "node", "nodejs"),
            source_file="main.js",
            run=("node", "main.js"),
        ),
        Runtime(
            name="go",
            aliases=("golang",),
            source_file="main.go",
            compile=("go", "build", "-o", "main", "main.go"),
            run=("./main",),
        ),
        Runtime(
            name="csharp",
            aliases=("cs", "c#", "dotnet"),
            source_file="Program.cs",
            compile=("mcs", "-out:main.exe", "Program.cs"),
            run=("mono", "main.exe"),
        ),
    ]
)
