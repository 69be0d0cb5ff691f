"""Keys in logged query strings are masked however their parameter's name is spelled."""

from __future__ import annotations

import pytest

from codebeaker.logs import redact_keys


@pytest.mark.parametrize(
    ("logged", "shown"),
    [
        (
            '"WebSocket /ws/jsonrpc?apiKey=s3cret" [accepted]',
            '"WebSocket /ws/jsonrpc?apiKey=***" [accepted]',
        ),
        (
            '"GET /ws?x=1&api%4Bey=s3cret&y=2 HTTP/1.1" 200',
            '"GET /ws?x=1&api%4Bey=***&y=2 HTTP/1.1" 200',
        ),
        ('"WebSocket /ws?%61piKey=s3cret"', '"WebSocket /ws?%61piKey=***"'),
        (
            '"GET /api/v1/sessions?apikey=other HTTP/1.1"',
            '"GET /api/v1/sessions?apikey=other HTTP/1.1"',
        ),
        ("no query here", "no query here"),
    ],
)
def test_keys_in_queries_are_masked(logged: str, shown: str) -> None:
    assert redact_keys(logged) == shown
