import pytest
from pydantic import ValidationError

from codebeaker.settings import Settings


def test_reads_codebeaker_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CODEBEAKER_PORT", "6001")
    monkeypatch.setenv("CODEBEAKER_MAX_SESSIONS", "7")
    monkeypatch.setenv("CODEBEAKER_OUTPUT_LIMIT_BYTES", "4096")
    settings = Settings()
    assert (settings.port, settings.max_sessions, settings.output_limit_bytes) == (6001, 7, 4096)


def test_defaults_match_the_spec() -> None:
    settings = Settings(_env_file=None)
    assert settings.port == 5000
    assert settings.default_idle_timeout_minutes == 30
    assert settings.default_max_lifetime_minutes == 120
    assert settings.default_memory_mb == 512
    assert settings.default_cpu_limit == 1.0
    assert settings.output_limit_bytes == 1024 * 1024


def test_a_default_above_its_maximum_is_refused() -> None:
    with pytest.raises(ValidationError, match="default_memory_mb must not exceed max_memory_mb"):
        Settings(default_memory_mb=1024, max_memory_mb=512)


def test_image_names_follow_the_prefix() -> None:
    assert Settings(image_prefix="acme").image_for("go") == "acme/go:latest"


def test_an_empty_api_key_is_refused_not_taken_for_no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty key would let every client in that sends an empty one; unset means no key."""
    with pytest.raises(ValidationError, match="api_key"):
        Settings(api_key="")
    monkeypatch.setenv("CODEBEAKER_API_KEY", "")
    with pytest.raises(ValidationError, match="api_key"):
        Settings()
    monkeypatch.setenv("CODEBEAKER_API_KEY", "k")
    assert Settings().api_key == "k"
    monkeypatch.delenv("CODEBEAKER_API_KEY")
    assert Settings().api_key is None


def test_pool_sizes_are_canonical_and_known() -> None:
    assert Settings(pool_sizes={"py": 1, "python": 1, "js": 2}).pool_sizes == {
        "python": 2,
        "javascript": 2,
    }
    with pytest.raises(ValidationError, match="unknown language 'ruby'"):
        Settings(pool_sizes={"ruby": 1})
