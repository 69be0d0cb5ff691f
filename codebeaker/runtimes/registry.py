"""The languages CodeBeaker runs: one entry each, looked up by name or alias."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace

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
    sample: str = ""
    """A short program for a playground: asks for a name on stdin (the prompt flushed, no
    newline), reads a line and greets it. Written to ``source_file``, it compiles and runs;
    every registered language has one (empty only for test doubles)."""
    compile: tuple[str, ...] | None = None
    """Compile argv, for compiled languages; the program runs only when it exits 0."""
    env: dict[str, str] = field(default_factory=dict)
    default_context: bool = False
    """Sessions start a Python code context at once, so their first ``session.run_code``
    finds an interpreter waiting."""

    def with_source(self, filename: str) -> Runtime:
        """A copy that writes the code to ``filename``: every argv element equal to the old
        ``source_file`` names the new one instead."""

        def renamed(argv: tuple[str, ...]) -> tuple[str, ...]:
            return tuple(filename if arg == self.source_file else arg for arg in argv)

        return replace(
            self,
            source_file=filename,
            run=renamed(self.run),
            compile=None if self.compile is None else renamed(self.compile),
        )


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


JAVA_HELPER = "/opt/codebeaker/java/cbjava.py"
"""Baked into the java image (docker/runtimes/java): compiles a file whose public class has
another name, and runs the class that declares ``main``."""

PYTHON_SAMPLE = """\
name = input("What is your name? ")
print(f"Hello, {name}!")
"""
JAVASCRIPT_SAMPLE = """\
const readline = require("node:readline");

const rl = readline.createInterface({ input: process.stdin });
process.stdout.write("What is your name? ");
rl.once("line", (name) => {
  console.log(`Hello, ${name}!`);
  rl.close();
  process.stdin.destroy();
});
"""
GO_SAMPLE = """\
package main

import (
\t"bufio"
\t"fmt"
\t"os"
\t"strings"
)

func main() {
\tfmt.Print("What is your name? ")
\tname, _ := bufio.NewReader(os.Stdin).ReadString('\\n')
\tfmt.Printf("Hello, %s!\\n", strings.TrimSpace(name))
}
"""
CSHARP_SAMPLE = """\
using System;

public class Program
{
    public static void Main()
    {
        Console.Write("What is your name? ");
        string name = Console.ReadLine();
        Console.WriteLine($"Hello, {name}!");
    }
}
"""
C_SAMPLE = """\
#include <stdio.h>
#include <string.h>

int main(void) {
    char name[100] = "";
    printf("What is your name? ");
    fflush(stdout);
    if (fgets(name, sizeof name, stdin) != NULL)
        name[strcspn(name, "\\n")] = '\\0';
    printf("Hello, %s!\\n", name);
    return 0;
}
"""
CPP_SAMPLE = """\
#include <iostream>
#include <string>

int main() {
    std::cout << "What is your name? " << std::flush;
    std::string name;
    std::getline(std::cin, name);
    std::cout << "Hello, " << name << "!\\n";
}
"""
JAVA_SAMPLE = """\
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;

public class Main {
    public static void main(String[] args) throws IOException {
        System.out.print("What is your name? ");
        System.out.flush();
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in));
        String name = in.readLine();
        System.out.println("Hello, " + name + "!");
    }
}
"""

RUNTIMES = RuntimeRegistry(
    [
        Runtime(
            name="python",
            aliases=("py", "python3"),
            source_file="main.py",
            run=("python3", "-u", "main.py"),
            sample=PYTHON_SAMPLE,
            default_context=True,
        ),
        Runtime(
            name="python-data",
            aliases=("pydata",),
            source_file="main.py",
            run=("python3", "-u", "main.py"),
            sample=PYTHON_SAMPLE,
            default_context=True,
        ),
        Runtime(
            name="javascript",
            aliases=("js", "node", "nodejs"),
            source_file="main.js",
            run=("node", "main.js"),
            sample=JAVASCRIPT_SAMPLE,
        ),
        Runtime(
            name="go",
            aliases=("golang",),
            source_file="main.go",
            compile=("go", "build", "-o", "main", "main.go"),
            run=("./main",),
            sample=GO_SAMPLE,
        ),
        Runtime(
            name="csharp",
            aliases=("cs", "c#", "dotnet"),
            source_file="Program.cs",
            compile=("mcs", "-out:main.exe", "Program.cs"),
            run=("mono", "main.exe"),
            sample=CSHARP_SAMPLE,
        ),
        Runtime(
            name="c",
            aliases=("gcc",),
            source_file="main.c",
            compile=("gcc", "-O2", "-pipe", "-Wall", "-o", "main", "main.c", "-lm"),
            run=("./main",),
            sample=C_SAMPLE,
        ),
        Runtime(
            name="cpp",
            aliases=("c++", "cxx", "g++"),
            source_file="main.cpp",
            # C++20: the newest standard Debian's g++ 12 implements (bar modules)
            compile=("g++", "-std=c++20", "-O2", "-pipe", "-Wall", "-o", "main", "main.cpp"),
            run=("./main",),
            sample=CPP_SAMPLE,
        ),
        Runtime(
            name="java",
            aliases=("jdk", "openjdk"),
            source_file="Main.java",
            compile=(JAVA_HELPER, "compile", "Main.java"),
            run=(JAVA_HELPER, "run"),
            sample=JAVA_SAMPLE,
        ),
    ]
)
