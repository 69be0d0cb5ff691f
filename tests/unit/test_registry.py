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
    ],
)
def test_aliases_resolve_to_canonical_names(alias: str, name: str) -> None:
    assert RUNTIMES.get(alias).name == name


def test_unknown_language_lists_supported_names() -> None:
    with pytest.raises(UnsupportedLanguageError) as caught:
        RUNTIMES.get("cobol")
    assert caught.value.supported == ["csharp", "go", "javascript", "python"]
    assert isinstance(caught.value, ValueError)


def test_compiled_languages_have_a_compile_step() -> None:
    assert RUNTIMES.get("go").compile is not None
    assert RUNTIMES.get("csharp").compile is not None
    assert RUNTIMES.get("python").compile is None


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
