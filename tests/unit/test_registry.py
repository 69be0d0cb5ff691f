import pytest

from codebeaker.exceptions import UnsupportedLanguageError
from codebeaker.runtimes import RUNTIMES, Runtime, RuntimeRegistry


@pytest.mark.parametrize(
    ("alias", "name"),
    [
        ("python", "python"),
        ("py", "python"),
        ("PY", "python"),
        ("javascript", "javascript"),
        ("js", "javascript"),
        ("node", "javascript"),
        ("go", "go"),
        ("golang", "go"),
        ("csharp", "csharp"),
        ("cs", "csharp"),
        ("dotnet", "csharp"),
        ("c", "c"),
        ("gcc", "c"),
        ("cpp", "cpp"),
        ("c++", "cpp"),
        ("C++", "cpp"),
        ("cxx", "cpp"),
        ("g++", "cpp"),
        ("java", "java"),
        ("JDK", "java"),
    ],
)
def test_aliases_resolve_to_canonical_names(alias: str, name: str) -> None:
    assert RUNTIMES.get(alias).name == name


def test_unknown_language_lists_supported_names() -> None:
    with pytest.raises(UnsupportedLanguageError) as caught:
        RUNTIMES.get("cobol")
    assert caught.value.supported == [
        "c",
        "cpp",
        "csharp",
        "go",
        "java",
        "javascript",
        "python",
        "python-data",
    ]
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize("name", ["go", "csharp", "c", "cpp", "java"])
def test_compiled_languages_have_a_compile_step(name: str) -> None:
    runtime = RUNTIMES.get(name)
    assert runtime.compile is not None
    assert runtime.source_file in runtime.compile


def test_interpreted_languages_do_not_compile() -> None:
    assert RUNTIMES.get("python").compile is None
    assert RUNTIMES.get("javascript").compile is None


def test_new_compiled_languages() -> None:
    c, cpp, java = RUNTIMES.get("c"), RUNTIMES.get("cpp"), RUNTIMES.get("java")
    assert c.source_file == "main.c"
    assert c.compile is not None
    assert c.compile[0] == "gcc"
    assert "-lm" in c.compile
    assert c.run == ("./main",)
    assert cpp.source_file == "main.cpp"
    assert cpp.compile is not None
    assert cpp.compile[0] == "g++"
    assert "-std=c++20" in cpp.compile
    assert cpp.run == ("./main",)
    assert java.source_file == "Main.java"
    assert java.compile == ("/opt/codebeaker/java/cbjava.py", "compile", "Main.java")
    assert java.run == ("/opt/codebeaker/java/cbjava.py", "run")


@pytest.mark.parametrize("runtime", list(RUNTIMES), ids=lambda runtime: runtime.name)
def test_every_runtime_has_a_sample(runtime: Runtime) -> None:
    assert runtime.sample.endswith("\n")
    assert "What is your name? " in runtime.sample
    assert "Hello, " in runtime.sample


def test_with_source_renames_the_source_in_every_argv() -> None:
    c = RUNTIMES.get("c")
    renamed = c.with_source("prog.c")
    assert renamed.source_file == "prog.c"
    assert renamed.compile == ("gcc", "-O2", "-pipe", "-Wall", "-o", "main", "prog.c", "-lm")
    assert renamed.run == ("./main",)
    assert (renamed.name, renamed.aliases, renamed.sample) == (c.name, c.aliases, c.sample)
    assert c.source_file == "main.c"  # the registered entry is unchanged


def test_with_source_for_interpreted_and_helper_runtimes() -> None:
    python = RUNTIMES.get("python").with_source("script.py")
    assert python.run == ("python3", "-u", "script.py")
    assert python.compile is None
    java = RUNTIMES.get("java").with_source("Greeter.java")
    assert java.compile == ("/opt/codebeaker/java/cbjava.py", "compile", "Greeter.java")
    assert java.run == ("/opt/codebeaker/java/cbjava.py", "run")


def test_with_source_replaces_whole_arguments_only() -> None:
    runtime = Runtime(
        name="x",
        aliases=(),
        source_file="a.x",
        run=("run", "a.x", "--out=a.x", "a.xy"),
        compile=("cc", "a.x"),
    )
    renamed = runtime.with_source("b.x")
    assert renamed.run == ("run", "b.x", "--out=a.x", "a.xy")
    assert renamed.compile == ("cc", "b.x")


def test_duplicate_names_are_rejected() -> None:
    one = Runtime(name="a", aliases=("x",), source_file="a", run=("a",))
    two = Runtime(name="b", aliases=("X",), source_file="b", run=("b",))
    with pytest.raises(ValueError, match="registered twice"):
        RuntimeRegistry([one, two])


def test_every_runtime_has_a_dockerfile() -> None:
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "docker" / "runtimes"
    for runtime in RUNTIMES:
        assert (root / runtime.name / "Dockerfile").is_file(), runtime.name
