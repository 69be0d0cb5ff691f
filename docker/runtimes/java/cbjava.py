#!/usr/bin/python3 -IS
"""Compile and run a one-file Java program whatever the file is called.

javac refuses a public class in a file of another name, and ``execution.run`` writes every
program to ``Main.java``. So:

    cbjava.py compile Main.java [javac args...]   # exit status and messages are javac's
    cbjava.py run [program args...]               # execs java with the recorded main class

``compile`` finds the public top-level type and the top-level type with a ``static void
main``, copies the source under the public type's name into ``.cbjava/src`` (messages still
name the original file), compiles it into ``.cbjava/classes`` and records the main class in
``.cbjava/main``. ``run`` replaces itself with ``java``, so no extra process stays. Everything
is written under the working directory; stdlib only.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

BUILD = ".cbjava"
SRC, CLASSES, MAIN = f"{BUILD}/src", f"{BUILD}/classes", f"{BUILD}/main"
# Tuned for short one-shot programs in a 1-CPU, 512 MB container (measured, JDK 17):
# C1 only and no hsperfdata file in /tmp, for both. javac: Serial GC (fewest threads) and an
# AppCDS archive of its own classes, made at image build, which halves its start-up. Programs:
# G1, because JDK 17 maps the default CDS archive's heap objects (the full module graph) only
# under G1, which starts ~25 ms faster than Serial, and has no young/old split capping the
# largest array; heap 75% of the container's memory (the JVM's default is 25%); 8 MB
# stacks, as C programs get.
JVM = ("-Xshare:auto", "-XX:TieredStopAtLevel=1", "-XX:-UsePerfData")
JAVA = (*JVM, "-XX:+UseG1GC", "-XX:MaxRAMPercentage=75", "-Xss8m")
JAVAC_CDS = "/opt/codebeaker/java/javac.jsa"  # made by the Dockerfile: absent while it is
CDS = (f"-XX:SharedArchiveFile={JAVAC_CDS}",) if os.path.exists(JAVAC_CDS) else ()
JAVAC = tuple(f"-J{flag}" for flag in (*JVM, "-XX:+UseSerialGC", *CDS))

# Comments and literals first, so that braces and words inside them are skipped.
TOKEN = re.compile(
    r'(?P<skip>/\*.*?\*/|//[^\n]*|"""(?:\\.|.)*?"""|"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\')'
    r"|(?P<brace>[{}])"
    r"|\bpackage\s+(?P<package>[\w.]+)\s*;"
    r"|(?P<public>\bpublic\s+(?:(?:abstract|final|sealed|non-sealed|strictfp|static)\s+)*)?"
    r"\b(?:class|interface|enum|record)\s+(?P<type>(?:[^\W\d]|\$)[\w$]*)"
    r"|(?P<main>\bstatic\s[^;{}=]*\bvoid\s+main\s*\()",
    re.DOTALL,
)


def scan(source: str) -> tuple[str, str | None, str | None]:
    """(package prefix, public top-level type, top-level type declaring ``main``)."""
    package, public, main, current, depth = "", None, None, None, 0
    for match in TOKEN.finditer(source):
        if match["brace"]:
            depth += 1 if match["brace"] == "{" else -1
        elif match["package"] and depth == 0:
            package = match["package"] + "."
        elif match["type"] and depth == 0:
            current = match["type"]
            if match["public"] and public is None:
                public = current
        elif match["main"] and depth == 1 and main is None:
            main = current
    return package, public, main


def compile_(path: str, javac_args: list[str]) -> int:
    try:
        with open(path, encoding="utf-8", errors="replace") as file:
            package, public, main = scan(file.read())
    except OSError as exc:
        sys.exit(f"cbjava: {exc}")
    original = os.path.basename(path)
    shutil.rmtree(BUILD, ignore_errors=True)
    os.makedirs(SRC)
    copy = f"{SRC}/{public}.java" if public else f"{SRC}/{original}"
    shutil.copyfile(path, copy)
    argv = ["javac", *JAVAC, "-encoding", "UTF-8", "-d", CLASSES]
    done = subprocess.run([*argv, *javac_args, copy], capture_output=True, check=False)
    for data, stream in ((done.stdout, sys.stdout), (done.stderr, sys.stderr)):
        stream.buffer.write(data.replace(copy.encode(), path.encode()))
        stream.flush()
    if done.returncode == 0:
        with open(MAIN, "w", encoding="utf-8") as file:
            file.write(package + (main or public or os.path.splitext(original)[0]))
    return done.returncode


def run(args: list[str]) -> None:
    try:
        with open(MAIN, encoding="utf-8") as file:
            main = file.read().strip()
    except FileNotFoundError:
        sys.exit(f"cbjava: nothing compiled here; run `{sys.argv[0]} compile FILE` first")
    os.execvp("java", ["java", *JAVA, "-cp", CLASSES, main, *args])  # noqa: S606 (argv, no shell)


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "compile":
        sys.exit(compile_(sys.argv[2], sys.argv[3:]))
    if len(sys.argv) >= 2 and sys.argv[1] == "run":
        run(sys.argv[2:])
    sys.exit(f"usage: {sys.argv[0]} compile FILE [javac args...] | run [args...]")
