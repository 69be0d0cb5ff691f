from pathlib import Path

from codebeaker.images import content_hash, debian_mirror


def test_mirror_from_deb822_sources_skips_security_and_other_repos(tmp_path: Path) -> None:
    sources = tmp_path / "sources.list.d"
    sources.mkdir()
    (sources / "a-vendor.sources").write_text(
        "Types: deb\nURIs: https://vendor.example/apt\nSuites: nodistro\nComponents: main\n"
    )
    (sources / "debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\n\n"
        "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\n"
    )
    assert debian_mirror([tmp_path / "sources.list", sources]) == "http://mirror.example/debian"


def test_mirror_from_one_line_sources(tmp_path: Path) -> None:
    listing = tmp_path / "sources.list"
    listing.write_text(
        "# comment\n"
        "deb http://security.example/debian-security bookworm-security main\n"
        "deb [arch=amd64 signed-by=/k.gpg] http://mirror.example/debian bookworm main\n"
    )
    assert debian_mirror([listing]) == "http://mirror.example/debian"
    assert debian_mirror([tmp_path / "missing"]) is None


def test_content_hash_follows_files_and_base(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM x\n")
    first = content_hash(tmp_path, "sha256:aaa")
    assert content_hash(tmp_path, "sha256:aaa") == first
    assert content_hash(tmp_path, "sha256:bbb") != first
    (tmp_path / "guest.py").write_text("print(1)\n")
    assert content_hash(tmp_path, "sha256:aaa") != first


def test_mirror_for_another_suite(tmp_path: Path) -> None:
    listing = tmp_path / "sources.list"
    listing.write_text(
        "deb http://mirror.example/debian bookworm main\n"
        "deb http://security.example/debian-security bookworm-security main\n"
    )
    found = debian_mirror([listing], suite="bookworm-security")
    assert found == "http://security.example/debian-security"
