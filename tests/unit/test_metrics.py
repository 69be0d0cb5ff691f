"""The metrics module in process: labels, the scrape-time collector, the key, the gauge."""

from __future__ import annotations

import pytest
from codebeaker_client.models import CommandOutcome
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from codebeaker.metrics import (
    OUTCOME_LABELS,
    ServiceState,
    StateCollector,
    close_reason,
    count_command,
)
from codebeaker.rest.scrape import ConnectionGauge, metrics_endpoint


@pytest.mark.parametrize(
    ("reason", "label"),
    [
        ("closed by client", "client"),
        ("idle timeout", "idle"),
        ("max lifetime reached", "lifetime"),
        ("server shutdown", "shutdown"),
        ("container stopped or was removed", "gone"),
    ],
)
def test_close_reasons_are_a_bounded_set(reason: str, label: str) -> None:
    assert close_reason(reason) == label


def test_state_is_read_at_scrape_time() -> None:
    sessions = [("python", "alice"), ("python", "alice"), ("go", "bob")]
    registry = CollectorRegistry()
    registry.register(
        StateCollector(
            ServiceState(
                sessions=lambda: sessions,
                pools=lambda: [("python", 1, 2)],
                queues=lambda: [("run", 3), ("interactive", 0)],
            )
        )
    )
    assert (
        registry.get_sample_value(
            "codebeaker_sessions_open", {"language": "python", "tenant": "alice"}
        )
        == 2
    )
    sessions.pop()
    assert (
        registry.get_sample_value("codebeaker_sessions_open", {"language": "go", "tenant": "bob"})
        is None
    )
    assert registry.get_sample_value("codebeaker_pool_ready", {"language": "python"}) == 1
    assert registry.get_sample_value("codebeaker_pool_size", {"language": "python"}) == 2
    assert registry.get_sample_value("codebeaker_run_queue_depth", {"queue": "run"}) == 3


def app_with(key: str | None, *, keyed: bool = False) -> Starlette:
    async def hold(request: object) -> PlainTextResponse:
        value = REGISTRY.get_sample_value("codebeaker_connections", {"door": "test"})
        return PlainTextResponse(str(value))

    app = Starlette(
        routes=[Route("/metrics", metrics_endpoint(key, keyed=keyed)), Route("/hold", hold)],
    )
    app.add_middleware(ConnectionGauge, doors=lambda _type, _path: "test")
    return app


def test_metrics_scrape_parses_as_prometheus_text() -> None:
    with TestClient(app_with(None)) as client:
        response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    names = {family.name for family in text_string_to_metric_families(response.text)}
    assert {"codebeaker_rejected_requests", "codebeaker_commands"} <= names


def test_a_metrics_key_is_required_when_set() -> None:
    key = "k" * 20
    with TestClient(app_with(key)) as client:
        assert client.get("/metrics").status_code == 401
        wrong = client.get("/metrics", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        right = client.get("/metrics", headers={"Authorization": f"Bearer {key}"})
        assert right.status_code == 200


def test_a_keyed_server_without_a_metrics_key_refuses_the_scrape() -> None:
    with TestClient(app_with(None, keyed=True)) as client:
        refused = client.get("/metrics")
    assert refused.status_code == 403
    assert "CODEBEAKER_METRICS_KEY" in refused.text
    with TestClient(app_with("k" * 20, keyed=True)) as client:
        allowed = client.get("/metrics", headers={"Authorization": "Bearer " + "k" * 20})
    assert allowed.status_code == 200


def open_connections() -> float:
    return REGISTRY.get_sample_value("codebeaker_connections", {"door": "test"}) or 0.0


def test_connections_are_counted_while_they_last() -> None:
    before = open_connections()
    with TestClient(app_with(None)) as client:
        assert float(client.get("/hold").text) == before + 1
    assert open_connections() == before


def test_outcome_labels_are_a_bounded_set() -> None:
    """A forged error kind (the exec driver's guest shares user code's uid) can neither
    invent a label of any shape nor grow the set without end."""
    for n in range(OUTCOME_LABELS * 2):
        count_command("read_file", failed(f"kind_{n}: forged"))
    count_command("read_file", failed('bad"label{}: forged'))
    outcomes = {
        sample.labels["outcome"]
        for family in REGISTRY.collect()
        if family.name == "codebeaker_commands"
        for sample in family.samples
        if sample.labels.get("type") == "read_file"
    }
    assert "other" in outcomes
    assert len(outcomes) <= OUTCOME_LABELS + 1
    assert all(label.replace("_", "").isalnum() for label in outcomes), outcomes


def failed(error: str) -> CommandOutcome:
    return CommandOutcome(success=False, result=None, error=error, duration_ms=1)
