"""Start-up descriptor limit and the guarded protocol's configuration (the guard itself is
exercised against a real server in tests/integration/test_hostile_transport.py)."""

from __future__ import annotations

import resource

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from codebeaker.serving import GuardedHttpProtocol, guarded_http, raise_nofile


def test_nofile_is_raised_to_the_hard_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, 256), hard))
    assert raise_nofile(64) == resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if hard != resource.RLIM_INFINITY:
        assert resource.getrlimit(resource.RLIMIT_NOFILE) == (hard, hard)


def test_each_server_gets_its_own_bounds() -> None:
    small, large = guarded_http(5, 1.5), guarded_http(1000, 10)
    assert issubclass(small, GuardedHttpProtocol)
    assert issubclass(small, HttpToolsProtocol)
    assert (small.max_connections, small.handshake_timeout) == (5, 1.5)
    assert (large.max_connections, large.handshake_timeout) == (1000, 10)
