import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from codebeaker.constants import LOCAL_TENANT
from codebeaker.exceptions import LimitExceededError
from codebeaker.tenants import (
    LOCAL,
    KeysFileError,
    Tenant,
    TenantRuns,
    Tenants,
    TokenBucket,
    exposure_warning,
    load_keys_file,
)


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def keys_file(tmp_path: Path, entries: Any) -> Path:
    path = tmp_path / "keys.json"
    path.write_text(json.dumps(entries))
    return path


def test_entries_are_read_with_their_quotas(tmp_path: Path) -> None:
    path = keys_file(
        tmp_path,
        [
            {
                "name": "alice",
                "keySha256": digest("a").upper(),
                "maxSessions": 2,
                "maxConcurrentRuns": 3,
                "requestsPerSecond": 0.5,
            },
            {"name": "bob", "keySha256": digest("b")},
        ],
    )
    alice, bob = load_keys_file(path)
    assert (alice.name, alice.key_sha256) == ("alice", digest("a"))  # normalised to lower case
    assert (alice.max_sessions, alice.max_concurrent_runs, alice.requests_per_second) == (2, 3, 0.5)
    assert (bob.max_sessions, bob.max_concurrent_runs, bob.requests_per_second) == (None,) * 3


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ({"name": "alice"}, "must be a JSON list"),
        ([{"name": "alice", "keySha256": "abc"}], "entry 0 ('alice'): keySha256: String should"),
        (
            [
                {"name": "a", "keySha256": digest("a")},
                {"name": "b", "keySha256": digest("b"), "maxSessions": 0},
            ],
            "entry 1 ('b'): maxSessions: Input should be greater than or equal to 1",
        ),
        ([{"keySha256": digest("a")}], "entry 0: name: Field required"),
        ([{"name": "a", "keySha256": digest("a"), "key": "a"}], "entry 0 ('a'): key: Extra inputs"),
        (
            [{"name": "a", "keySha256": digest("a")}, {"name": "a", "keySha256": digest("b")}],
            "entry 1: name repeats entry 0's",
        ),
        (
            [{"name": "a", "keySha256": digest("a")}, {"name": "b", "keySha256": digest("a")}],
            "entry 1: keySha256 repeats entry 0's",
        ),
    ],
)
def test_a_bad_keys_file_is_refused_naming_the_entry_and_field(
    tmp_path: Path, entries: Any, message: str
) -> None:
    path = keys_file(tmp_path, entries)
    with pytest.raises(KeysFileError, match=r"CODEBEAKER_API_KEYS_FILE .*keys\.json: ") as caught:
        load_keys_file(path)
    assert message in str(caught.value)


def test_a_keys_file_that_is_not_json_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    path.write_text("[{")
    with pytest.raises(KeysFileError, match="cannot be read as JSON"):
        load_keys_file(path)
    with pytest.raises(KeysFileError, match="cannot be read as JSON"):
        load_keys_file(tmp_path / "missing.json")


def test_keys_resolve_to_their_tenants(tmp_path: Path) -> None:
    path = keys_file(
        tmp_path,
        [{"name": "alice", "keySha256": digest("ka")}, {"name": "bob", "keySha256": digest("kb")}],
    )
    tenants = Tenants.configure("single", path)
    assert tenants.required
    assert len(tenants) == 3
    alice, bob = tenants.resolve("ka"), tenants.resolve("kb")
    assert alice is not None
    assert alice.name == "alice"
    assert bob is not None
    assert bob.name == "bob"
    assert tenants.resolve("single") == LOCAL
    assert tenants.resolve("wrong") is None
    assert tenants.resolve("") is None
    assert tenants.resolve("\ud800") is None  # a lone surrogate is just a wrong key


def test_without_keys_every_caller_is_the_local_tenant() -> None:
    tenants = Tenants.configure(None, None)
    assert not tenants.required
    assert tenants.resolve("") == LOCAL == tenants.resolve("anything")
    assert LOCAL.name == LOCAL_TENANT


def test_the_single_key_may_not_clash_with_the_keys_file(tmp_path: Path) -> None:
    same_key = keys_file(tmp_path, [{"name": "alice", "keySha256": digest("k")}])
    with pytest.raises(KeysFileError, match="same key or name"):
        Tenants.configure("k", same_key)
    same_name = keys_file(tmp_path, [{"name": LOCAL_TENANT, "keySha256": digest("x")}])
    with pytest.raises(KeysFileError, match="same key or name"):
        Tenants.configure("k", same_name)


def test_token_bucket_admits_a_burst_then_the_rate() -> None:
    bucket = TokenBucket(2.0, now=0.0)  # a burst of 2, then one every half second
    assert bucket.take(0.0) == 0
    assert bucket.take(0.0) == 0
    assert bucket.take(0.0) == pytest.approx(0.5)
    assert bucket.take(0.25) == pytest.approx(0.25)
    assert bucket.take(0.5) == 0
    assert bucket.take(10.0) == 0  # refilled, but never beyond the burst
    assert bucket.take(10.0) == 0
    assert bucket.take(10.0) > 0


def test_a_slow_rate_still_admits_one_request() -> None:
    bucket = TokenBucket(0.1, now=0.0)
    assert bucket.take(0.0) == 0
    assert bucket.take(0.0) == pytest.approx(10.0)


def test_a_tenant_over_its_rate_is_told_when_to_retry() -> None:
    tenant = Tenant("alice", requests_per_second=1.0, bucket=TokenBucket(1.0))
    tenant.admit()
    with pytest.raises(LimitExceededError) as caught:
        tenant.admit()
    assert caught.value.limit == "requests_per_second"
    assert caught.value.retry_after is not None
    assert 0 < caught.value.retry_after <= 1
    LOCAL.admit()  # no rate: never refused
    LOCAL.admit()


def test_concurrent_runs_are_held_per_tenant() -> None:
    runs = TenantRuns()
    alice = Tenant("alice", max_concurrent_runs=1)
    with runs.hold(alice):
        assert runs.count("alice") == 1
        with pytest.raises(LimitExceededError) as caught, runs.hold(alice):
            pass
        assert caught.value.limit == "concurrent_runs"
        assert caught.value.retry_after == 1.0
        with runs.hold(Tenant("bob", max_concurrent_runs=1)):  # another tenant's own count
            assert runs.count("bob") == 1
        with runs.hold(LOCAL), runs.hold(LOCAL):  # no quota
            pass
    assert runs.count("alice") == 0
    with runs.hold(alice):  # released, even by an exception
        pass


@pytest.mark.parametrize(
    ("host", "warned"),
    [
        ("127.0.0.1", False),
        ("::1", False),
        ("[::1]", False),
        ("localhost", False),
        ("127.0.0.2", False),
        ("0.0.0.0", True),
        ("::", True),
        ("192.168.1.5", True),
        ("example.org", True),
    ],
)
def test_serving_beyond_loopback_without_keys_is_warned(host: str, warned: bool) -> None:
    warning = exposure_warning(host, Tenants.configure(None, None))
    assert (warning is not None) is warned
    if warning is not None:
        assert host in warning
        assert "CODEBEAKER_API_KEYS_FILE" in warning
    assert exposure_warning(host, Tenants.configure("key", None)) is None
