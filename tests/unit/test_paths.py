import pytest

from codebeaker.commands.paths import is_allowed, resolve
from codebeaker.exceptions import CommandFailedError


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("hello.py", "/workspace/hello.py"),
        (".", "/workspace"),
        ("a/b/../c.txt", "/workspace/a/c.txt"),
        ("/workspace/x", "/workspace/x"),
        ("/tmp/scratch", "/tmp/scratch"),
        ("/tmp", "/tmp"),
        ("//workspace//a", "/workspace/a"),
        ("./a/./b", "/workspace/a/b"),
    ],
)
def test_allowed_paths_resolve_against_workspace(given: str, expected: str) -> None:
    assert resolve(given) == expected


@pytest.mark.parametrize(
    "given",
    [
        "../etc/passwd",
        "/etc/passwd",
        "/workspace/../etc",
        "/",
        "/workspace2/x",
        "/tmpfoo",
        "a/../../x",
    ],
)
def test_paths_leaving_the_roots_are_rejected(given: str) -> None:
    with pytest.raises(CommandFailedError) as caught:
        resolve(given)
    assert caught.value.kind == "path_outside_workspace"
    assert str(caught.value).startswith("path_outside_workspace: ")


def test_prefix_lookalikes_are_not_inside() -> None:
    assert is_allowed("/workspace")
    assert not is_allowed("/workspacex")
    assert not is_allowed("/tm")
