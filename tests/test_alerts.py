"""Quality alerts: failed checks and runs reach a real HTTP endpoint once, and survive the endpoint being down."""

import json
import socket

import dagster as dg
import polars as pl

from feature_assets.orchestration.alert_sensor import build_alert_sensor
from feature_assets.orchestration.project import build_definitions
from resources.alert_webhook import AlertWebhook
from resources.offline_store import OfflineStore
from resources.online_store import RedisOnlineStore
from tests.fixtures.alert_endpoint import AlertEndpoint
from tests.publishing_views import repository
from tests.test_publishing import REPOSITORY, materialize_view, tick, write_day


def definitions(offline_store: OfflineStore, redis_url: str, max_pending: int = 500) -> dg.Definitions:
    """The project's definitions with this test's alert sensor; the webhook is passed to each tick."""
    project = build_definitions(repository, offline_store, RedisOnlineStore(url=redis_url, repository=REPOSITORY))
    return dg.Definitions(
        assets=project.assets,
        asset_checks=project.asset_checks,
        sensors=[
            *(s for s in project.sensors or () if s.name != "quality_alerts"),
            build_alert_sensor(max_pending=max_pending),
        ],
        resources={k: v for k, v in (project.resources or {}).items() if k != "alert_webhook"},
    )


def closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}/alerts"


def webhook(endpoint: AlertEndpoint) -> AlertWebhook:
    return AlertWebhook(url=endpoint.url, timeout_seconds=2.0, attempts=2, backoff_seconds=0.01)


def alert_tick(defs: dg.Definitions, instance, hook: AlertWebhook, cursor: str | None):
    context = dg.build_sensor_context(
        instance=instance, definitions=defs, cursor=cursor, resources={"alert_webhook": hook}
    )
    return defs.resolve_sensor_def("quality_alerts").evaluate_tick(context)


def test_a_partition_failing_its_blocking_check_sends_exactly_one_alert(instance, offline_store, redis_url, endpoint):
    write_day(offline_store, 4, [(1, 8, 4.0, "oslo"), (2, 9, 9.9, "oslo"), (3, 10, 4.5, "bergen")])
    defs = definitions(offline_store, redis_url)
    run = materialize_view(defs, instance, "2025-01-04")
    assert not run.success
    assert tick(defs, instance, cursor=None).run_requests == []

    first = alert_tick(defs, instance, webhook(endpoint), cursor=None)

    assert first.run_requests == []
    (alert,) = endpoint.accepted
    assert alert.pop("timestamp").startswith("2")
    assert alert == {
        "kind": "check_failed",
        "asset": "driver_quality",
        "partition": "2025-01-04",
        "check": "schema",
        "severity": "ERROR",
        "summary": "1 of 3 rows fail the schema",
        "run_id": run.run_id,
    }
    second = alert_tick(defs, instance, webhook(endpoint), cursor=first.cursor)
    assert len(endpoint.accepted) == 1
    assert endpoint.requests == 1
    assert "no new" in second.skip_message


def test_a_failed_warning_check_sends_a_warn_alert_for_its_partition(instance, offline_store, redis_url, endpoint):
    write_day(offline_store, 4, [(1, 8, 4.0, "oslo"), (2, 9, 4.2, None), (3, 10, 4.5, "bergen")])
    defs = definitions(offline_store, redis_url)
    assert materialize_view(defs, instance, "2025-01-04").success, "a warning does not fail the run"

    alert_tick(defs, instance, webhook(endpoint), cursor=None)

    assert all(a["kind"] == "check_failed" for a in endpoint.accepted)
    (alert,) = [a for a in endpoint.accepted if a["partition"] == "2025-01-04"]
    assert (alert["kind"], alert["check"], alert["severity"]) == ("check_failed", "null_rate", "WARN")
    assert (alert["asset"], alert["partition"]) == ("driver_quality", "2025-01-04")
    assert "city" in alert["summary"]


def test_an_alert_the_endpoint_refuses_stays_queued_until_it_answers(instance, offline_store, redis_url, endpoint):
    write_day(offline_store, 4, [(1, 8, 0.5, "oslo")])
    defs = definitions(offline_store, redis_url)
    materialize_view(defs, instance, "2025-01-04")
    endpoint.status = 500

    refused = alert_tick(defs, instance, webhook(endpoint), cursor=None)

    assert endpoint.requests == 2, "both attempts were made"
    assert endpoint.accepted == []
    assert [a["partition"] for a in json.loads(refused.cursor)["pending"]] == ["2025-01-04"]
    unreachable = alert_tick(defs, instance, AlertWebhook(url=closed_port_url(), attempts=1), cursor=refused.cursor)
    assert unreachable.cursor == refused.cursor
    endpoint.status = 200
    delivered = alert_tick(defs, instance, webhook(endpoint), cursor=unreachable.cursor)
    assert [(a["check"], a["partition"]) for a in endpoint.accepted] == [("schema", "2025-01-04")]
    assert json.loads(delivered.cursor)["pending"] == []
    alert_tick(defs, instance, webhook(endpoint), cursor=delivered.cursor)
    assert len(endpoint.accepted) == 1


def test_a_run_failing_outside_any_check_sends_a_run_failed_alert(instance, offline_store, redis_url, endpoint):
    frame = pl.DataFrame({"driver_id": [1], "ts": ["not a time"], "rating": [4.0], "city": ["oslo"]})
    offline_store.write_file("raw/driver_quality/day-04.parquet", frame)
    defs = definitions(offline_store, redis_url)
    run = materialize_view(defs, instance, "2025-01-04")
    assert not run.success

    alert_tick(defs, instance, webhook(endpoint), cursor=None)

    (alert,) = endpoint.accepted
    assert alert["kind"] == "run_failed"
    assert (alert["asset"], alert["partition"], alert["check"]) == ("driver_quality", "2025-01-04", None)
    assert (alert["severity"], alert["run_id"]) == ("ERROR", run.run_id)
    assert "driver_quality" in alert["summary"]


def test_the_queue_keeps_the_newest_alerts_when_it_overflows(instance, offline_store, redis_url, endpoint):
    for day in (4, 5):
        write_day(offline_store, day, [(1, 8, 0.5, "oslo")])
    defs = definitions(offline_store, redis_url, max_pending=1)
    materialize_view(defs, instance, "2025-01-04", "2025-01-05")
    endpoint.status = 500

    result = alert_tick(defs, instance, webhook(endpoint), cursor=None)

    (kept,) = json.loads(result.cursor)["pending"]
    assert kept["partition"] == "2025-01-05"
    assert endpoint.requests == 2, "delivery stopped at the first refused alert"


def test_without_a_url_an_alert_counts_as_delivered_to_the_log_only():
    webhook = AlertWebhook()
    assert webhook.deliver({"kind": "check_failed"}) is True
    assert webhook.last_error is None


def test_an_unreachable_endpoint_makes_delivery_return_false_with_the_reason():
    webhook = AlertWebhook(url=closed_port_url(), attempts=2, backoff_seconds=0.01)
    assert webhook.deliver({"kind": "check_failed"}) is False
    assert "after 2 attempts" in webhook.last_error


def test_the_url_comes_from_alert_webhook_url(monkeypatch):
    monkeypatch.setenv("ALERT_WEBHOOK_URL", "http://127.0.0.1:9/hook")
    assert AlertWebhook.from_env().url == "http://127.0.0.1:9/hook"
    assert isinstance(AlertWebhook.from_env(as_env_vars=True).url, dg.EnvVar)
    monkeypatch.delenv("ALERT_WEBHOOK_URL")
    assert AlertWebhook.from_env().url is None
