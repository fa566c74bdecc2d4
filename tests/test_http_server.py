"""The HTTP feature server, run as a real process: Feast's shapes, answers equal to the Python resource's, keys, errors.

The server is started the way `feature-store serve` starts it (uvicorn, uvloop, httptools) on a free loopback port,
over the session's Redis and an offline store in a temporary folder, serving the repository defined below.
"""

import hashlib
import http.client
import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from prometheus_client.parser import text_string_to_metric_families

from feature_assets import Entity, FeatureRepository, FeatureService, FeatureView, Field, ParquetSource, PushSource
from feature_assets.retrieval.point_in_time import get_historical_features
from resources.embedded_redis import RedisServer, free_port
from resources.offline_store import OfflineStore
from resources.online_store import RedisOnlineStore

ROOT = Path(__file__).resolve().parent.parent
REPOSITORY = "tests.test_http_server:repository"
MAX_BODY_BYTES = 64 * 1024
MAX_HISTORICAL_ROWS = 50
KEYS = {"reader": "reader-secret-1", "pusher": "pusher-secret-2", "narrow": "narrow-secret-3"}

DRIVER = Entity("driver", ["driver_id"])
EVENTS = ParquetSource("http_driver_events", "raw/http_driver_events/*.parquet", timestamp_field="event_timestamp")
STATS = FeatureView(
    "driver_stats",
    entities=[DRIVER],
    source=EVENTS,
    ttl="1d",
    owner="team:serving",
    tags={"tier": "gold"},
    schema=[Field("conv_rate", pl.Float64), Field("trips", pl.Int64), Field("city", pl.String)],
    start_date="2025-01-01",
)
SHORT = FeatureView("short_lived", entities=[DRIVER], source=EVENTS, ttl="2s", schema=[Field("score", pl.Float64)])
LIVE = FeatureView(
    "driver_live",
    entities=[DRIVER],
    source=PushSource("driver_live_push", batch_source=ParquetSource("driver_live_log", "raw/live/*.parquet", "ts")),
    ttl="3650d",
    schema=[Field("rate", pl.Float64, min_value=0.0, max_value=1.0), Field("rides", pl.Int64)],
)
RANKING = FeatureService("ranking", ["driver_stats:conv_rate", "driver_live:rate", "driver_stats:city"])
repository = FeatureRepository([STATS, SHORT, LIVE], services=[RANKING])

KEYS_FILE = f"""
- name: reader
  sha256: {hashlib.sha256(KEYS["reader"].encode()).hexdigest()}
  grants: {{services: ["*"], views: ["*"]}}
  actions: [read]
- name: pusher
  sha256: {hashlib.sha256(KEYS["pusher"].encode()).hexdigest()}
  grants: {{views: [driver_live]}}
  actions: [push, read]
- name: narrow
  sha256: {hashlib.sha256(KEYS["narrow"].encode()).hexdigest()}
  grants: {{services: [ranking], views: [short_lived]}}
  actions: [read]
"""


class Server:
    """A feature server process on a loopback port, with its log files."""

    def __init__(
        self, folder: Path, environment: dict[str, str], *arguments: str, repository: str = REPOSITORY
    ) -> None:
        self.port = free_port()
        self.log = folder / f"server-{self.port}.log"
        command = [
            sys.executable,
            "-c",
            "import sys; from feature_assets.serving.cli import main; main.NOUNS = ('serve',); "
            "sys.exit(main.main(sys.argv[1:]))",
            "serve",
            "--repository",
            repository,
            "--port",
            str(self.port),
            *arguments,
        ]
        inherited = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME", "PROMETHEUS_MULTIPROC_DIR")}
        environment = {**inherited, "PYTHONPATH": str(ROOT), **environment}
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(command, cwd=folder, env=environment, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text()
            try:
                self.call("GET", "/views", key=KEYS["reader"])
                return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise AssertionError(f"the server did not start: {self.log.read_text()}")

    def call(
        self,
        method: str,
        path: str,
        body: object = None,
        *,
        key: str | None = None,
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        """Send one request; return the status, the headers (lower-case names) and the body."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        sent = {**({"Authorization": f"Bearer {key}"} if key else {}), **(headers or {})}
        payload = raw if raw is not None else None if body is None else json.dumps(body).encode()
        try:
            connection.request(method, path, body=payload, headers=sent)
            answer = connection.getresponse()
            return answer.status, {k.lower(): v for k, v in answer.getheaders()}, answer.read()
        finally:
            connection.close()

    def json(self, method: str, path: str, body: object = None, **options: object) -> tuple[int, dict]:
        """Send one request; return the status and the JSON body."""
        status, _, payload = self.call(method, path, body, **options)
        return status, json.loads(payload)

    def stop(self) -> None:
        """Stop the process."""
        self.process.terminate()
        self.process.wait(timeout=30)


@pytest.fixture(scope="module")
def offline_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("http_offline")


@pytest.fixture(scope="module")
def server(redis_url, offline_root, tmp_path_factory) -> Iterator[Server]:
    """The server with API keys, an audit log, a 64 KiB body limit and a 50-row historical limit."""
    folder = tmp_path_factory.mktemp("http_server")
    (folder / "keys.yaml").write_text(KEYS_FILE)
    environment = {
        "REDIS_URL": redis_url,
        "OFFLINE_ROOT": str(offline_root),
        "FEATURE_STORE_AUDIT_LOG": str(folder / "audit.log"),
    }
    options = ["--api-keys-file", str(folder / "keys.yaml"), "--max-body-bytes", str(MAX_BODY_BYTES)]
    running = Server(folder, environment, *options, "--max-historical-rows", str(MAX_HISTORICAL_ROWS))
    running.audit_log = folder / "audit.log"
    yield running
    running.stop()


@pytest.fixture
def store(redis_url, redis_client) -> Iterator[RedisOnlineStore]:
    """The Python resource on the same (emptied) Redis, resolving the same repository."""
    online = RedisOnlineStore(url=redis_url, repository=REPOSITORY)
    yield online
    online.close()


def rows(view: FeatureView, records: list[dict]) -> pl.DataFrame:
    return pl.DataFrame(
        [{**record, "created_timestamp": record["event_timestamp"]} for record in records], schema=view.output_schema
    )


def iso(moment: datetime | None) -> str:
    moment = moment or datetime(1970, 1, 1, tzinfo=UTC)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def columns_of(answer: dict) -> dict[str, dict]:
    return dict(zip(answer["metadata"]["feature_names"], answer["results"], strict=True))


def expected_columns(response, join_keys: list[str]) -> dict[str, dict]:
    """Return the Python resource's answer in the server's shape, for comparison."""
    names = {"present": "PRESENT", "not_found": "NOT_FOUND", "expired": "OUTSIDE_MAX_AGE"}
    expected = {}
    rows_count = len(response.columns[join_keys[0]])
    for key in join_keys:
        expected[key] = {"values": response.columns[key], "statuses": ["PRESENT"] * rows_count}
    for name, statuses in response.statuses.items():
        expected[name] = {"values": response.columns[name], "statuses": [names[s] for s in statuses]}
    return expected


def write_stats(store: RedisOnlineStore, moment: datetime) -> None:
    store.write_batch(
        STATS,
        rows(
            STATS,
            [
                {"driver_id": 1, "event_timestamp": moment, "conv_rate": 0.5, "trips": 3, "city": "Lyon"},
                {"driver_id": 2, "event_timestamp": moment - timedelta(hours=1), "conv_rate": None, "trips": 7},
            ],
        ),
    )
    store.write_batch(LIVE, rows(LIVE, [{"driver_id": 2, "event_timestamp": moment, "rate": 0.25, "rides": 9}]))


def test_online_features_equal_the_python_resource_column_by_column(server, store):
    moment = datetime.now(UTC).replace(microsecond=123456)
    write_stats(store, moment)
    features = ["driver_stats:conv_rate", "driver_stats:city", "driver_live:rate"]
    status, answer = server.json(
        "POST", "/get-online-features", {"features": features, "entities": {"driver_id": [1, 2, 3]}}, key=KEYS["reader"]
    )
    assert status == 200
    expected = store.get_online_features(features, {"driver_id": [1, 2, 3]}, include_timestamps=True)
    served = columns_of(answer)
    assert answer["metadata"]["feature_names"] == ["driver_id", "conv_rate", "city", "rate"]
    assert {name: {k: column[k] for k in ("values", "statuses")} for name, column in served.items()} == (
        expected_columns(expected, ["driver_id"])
    )
    assert served["driver_id"]["event_timestamps"] == [iso(None)] * 3
    assert served["conv_rate"]["event_timestamps"] == [iso(moment), iso(moment - timedelta(hours=1)), iso(None)]
    assert served["rate"]["event_timestamps"] == [iso(None), iso(moment), iso(None)]
    assert served["city"]["statuses"] == ["PRESENT", "PRESENT", "NOT_FOUND"]


def test_a_service_read_equals_the_resource_and_full_feature_names_name_columns_view__feature(server, store):
    write_stats(store, datetime.now(UTC))
    body = {"feature_service": "ranking", "entities": {"driver_id": [2, 1]}, "full_feature_names": True}
    status, answer = server.json("POST", "/get-online-features", body, key=KEYS["narrow"])
    assert status == 200
    expected = store.get_online_features(RANKING, {"driver_id": [2, 1]}, full_feature_names=True)
    assert answer["metadata"]["feature_names"] == [
        "driver_id",
        "driver_stats__conv_rate",
        "driver_live__rate",
        "driver_stats__city",
    ]
    served = columns_of(answer)
    assert {name: {k: column[k] for k in ("values", "statuses")} for name, column in served.items()} == (
        expected_columns(expected, ["driver_id"])
    )


def test_a_value_older_than_its_view_ttl_is_outside_max_age(server, store, redis_client):
    event = datetime.now(UTC) - timedelta(milliseconds=1700)
    store.write_batch(SHORT, rows(SHORT, [{"driver_id": 1, "event_timestamp": event, "score": 1.0}]))
    redis_client.persist("fs:{i:1}:short_lived:v1")
    time.sleep(max(0.0, (event + timedelta(milliseconds=2100) - datetime.now(UTC)).total_seconds()))
    body = {"features": ["short_lived:score"], "entities": {"driver_id": [1, 2]}}
    status, answer = server.json("POST", "/get-online-features", body, key=KEYS["narrow"])
    assert status == 200
    score = columns_of(answer)["score"]
    assert score["values"] == [None, None]
    assert score["statuses"] == ["OUTSIDE_MAX_AGE", "NOT_FOUND"]
    assert score["event_timestamps"] == [iso(event), iso(None)]
    expected = store.get_online_features(["short_lived:score"], {"driver_id": [1, 2]})
    assert expected.statuses["score"] == ["expired", "not_found"]


def test_request_values_may_come_in_request_context_as_with_feasts_go_server(server, store):
    write_stats(store, datetime.now(UTC))
    body = {"features": ["driver_stats:trips"], "entities": {"driver_id": [1]}, "request_context": {"fare": [3.0]}}
    status, answer = server.json("POST", "/get-online-features", body, key=KEYS["reader"])
    assert status == 200 and columns_of(answer)["trips"]["values"] == [3]


def test_pushed_rows_are_readable_at_once_and_the_audit_line_names_the_key_but_never_holds_it(
    server, store, offline_root
):
    pushed_at = "2025-01-07T09:30:00Z"
    body = {
        "push_source_name": "driver_live_push",
        "df": {
            "driver_id": [7, 8],
            "ts": [pushed_at, "2025-01-07T09:31:00+00:00"],
            "rate": [0.75, 0.5],
            "rides": [1, 2],
        },
        "to": "online_and_offline",
    }
    status, answer = server.json("POST", "/push", body, key=KEYS["pusher"])
    assert status == 200, answer
    assert answer["views"]["driver_live"]["rows"] == 2
    read = {"features": ["driver_live:rate", "driver_live:rides"], "entities": {"driver_id": [7, 8]}}
    status, answer = server.json("POST", "/get-online-features", read, key=KEYS["pusher"])
    assert columns_of(answer)["rate"]["values"] == [0.75, 0.5]
    assert columns_of(answer)["rate"]["event_timestamps"][0] == pushed_at
    assert store.get_online_features(["driver_live:rides"], {"driver_id": [7, 8]}).to_dict()["rides"] == [1, 2]
    assert list((offline_root / "driver_live" / "v1" / "pushed").rglob("*.parquet"))

    lines = [json.loads(line) for line in server.audit_log.read_text().splitlines()]
    pushed = [line for line in lines if line["action"] == "push" and line["status"] == 200]
    assert pushed[-1]["who"] == "pusher" and pushed[-1]["outcome"] == "ok"
    assert (
        pushed[-1]["target"]["views"] == ["driver_live"] and pushed[-1]["target"]["push_source"] == "driver_live_push"
    )
    assert all(secret not in server.audit_log.read_text() for secret in KEYS.values())


def test_a_push_to_an_unknown_source_is_404_naming_the_known_ones_and_bad_rows_are_422_with_push_message(server, store):
    body = {"push_source_name": "nope", "df": {"driver_id": [1]}, "to": "online"}
    status, answer = server.json("POST", "/push", body, key=KEYS["pusher"])
    assert status == 404 and "known push and stream sources: ['driver_live_push']" in answer["error"]["message"]
    bad = {"driver_id": [1], "ts": ["2025-01-07T09:30:00Z"], "rate": [5.0], "rides": [1]}
    status, answer = server.json(
        "POST", "/push", {"push_source_name": "driver_live_push", "df": bad}, key=KEYS["pusher"]
    )
    assert status == 422 and answer["error"]["type"] == "PushError"
    assert "column 'rate'" in answer["error"]["message"] and "nothing was written" in answer["error"]["message"]
    status, answer = server.json(
        "POST", "/push", {"push_source_name": "driver_live_push", "df": bad}, key=KEYS["reader"]
    )
    assert status == 403 and "may not push" in answer["error"]["message"]
    refused = [json.loads(line) for line in server.audit_log.read_text().splitlines()][-1]
    assert refused["who"] == "reader" and refused["status"] == 403 and refused["outcome"] == "refused"


def test_historical_features_as_arrow_equal_get_historical_features(server, offline_root):
    offline = OfflineStore(root=str(offline_root))
    day = date(2025, 1, 6)
    start = datetime(2025, 1, 6, tzinfo=UTC)
    offline.write_partition(
        STATS,
        day,
        rows(
            STATS,
            [
                {"driver_id": 1, "event_timestamp": start + timedelta(hours=1), "conv_rate": 0.1, "trips": 1},
                {"driver_id": 1, "event_timestamp": start + timedelta(hours=5), "conv_rate": 0.2, "trips": 2},
                {"driver_id": 2, "event_timestamp": start + timedelta(hours=2), "conv_rate": 0.3, "city": "Oslo"},
            ],
        ),
    )
    entities = {
        "driver_id": [1, 1, 2, 3],
        "event_timestamp": [
            "2025-01-06T03:00:00Z",
            "2025-01-06T06:00:00+00:00",
            "2025-01-06T02:00:00",
            "2025-01-06T09:00:00Z",
        ],
    }
    features = ["driver_stats:conv_rate", "driver_stats:city"]
    body = {"features": features, "entities": entities, "full_feature_names": True}
    status, headers, payload = server.call("POST", "/get-historical-features", body, key=KEYS["reader"])
    assert status == 200 and headers["content-type"] == "application/vnd.apache.arrow.stream"
    served = pl.read_ipc_stream(io.BytesIO(payload))
    frame = pl.DataFrame(
        {
            "driver_id": entities["driver_id"],
            "event_timestamp": [datetime(2025, 1, 6, hour, tzinfo=UTC) for hour in (3, 6, 2, 9)],
        },
        schema={"driver_id": pl.Int64, "event_timestamp": pl.Datetime("us", "UTC")},
    )
    expected = get_historical_features(
        frame, features, repository=repository, offline_store=offline, full_feature_names=True
    )
    assert served.equals(expected)
    assert served["driver_stats__conv_rate"].to_list() == [0.1, 0.2, 0.3, None]

    body["format"] = "parquet"
    status, headers, payload = server.call("POST", "/get-historical-features", body, key=KEYS["reader"])
    assert status == 200 and pl.read_parquet(io.BytesIO(payload)).equals(expected)


def test_a_historical_frame_over_the_row_limit_is_413_naming_the_setting(server):
    entities = {"driver_id": list(range(60)), "event_timestamp": ["2025-01-06T03:00:00Z"] * 60}
    body = {"features": ["driver_stats:trips"], "entities": entities}
    status, answer = server.json("POST", "/get-historical-features", body, key=KEYS["reader"])
    assert status == 413 and "max_historical_rows" in answer["error"]["message"]


def test_a_request_without_a_valid_key_is_401_and_outside_its_grant_403_naming_action_and_view(server, store):
    body = {"features": ["driver_stats:trips"], "entities": {"driver_id": [1]}}
    status, headers, payload = server.call("POST", "/get-online-features", body)
    assert status == 401 and headers["www-authenticate"].startswith("Bearer")
    assert json.loads(payload)["error"]["type"] == "Unauthorized"
    assert server.json("POST", "/get-online-features", body, key="wrong")[0] == 401
    status, answer = server.json("POST", "/get-online-features", body, key=KEYS["narrow"])
    assert status == 403
    assert "may not read view(s) ['driver_stats']" in answer["error"]["message"]
    status, _ = server.json("POST", "/get-online-features", body, headers={"X-API-Key": KEYS["reader"]})
    assert status == 200
    status, answer = server.json("GET", "/views", key=KEYS["narrow"])
    assert [view["name"] for view in answer["views"]] == ["short_lived"]


def test_errors_are_json_naming_what_is_wrong(server, store):
    key = KEYS["reader"]
    status, answer = server.json(
        "POST", "/get-online-features", {"features": ["driver_stats:speed"], "entities": {"driver_id": [1]}}, key=key
    )
    assert status == 404 and "unknown feature 'speed' in view 'driver_stats'" in answer["error"]["message"]
    status, answer = server.json("POST", "/get-online-features", raw=b'{"features": [', key=key)
    assert status == 422 and "not valid JSON" in answer["error"]["message"]
    status, answer = server.json("POST", "/get-online-features", {"features": ["driver_stats:trips"]}, key=key)
    assert status == 422 and "field 'entities'" in answer["error"]["message"]
    body = {"features": ["driver_stats:trips"], "entities": {"customer": [1]}}
    status, answer = server.json("POST", "/get-online-features", body, key=key)
    assert status == 422 and "join key 'driver_id'" in answer["error"]["message"]
    status, answer = server.json(
        "POST", "/get-online-features", {"feature_service": "nope", "entities": {"driver_id": [1]}}, key=key
    )
    assert status == 404 and "unknown feature service 'nope'" in answer["error"]["message"]
    big = b'{"features": ["driver_stats:trips"], "entities": {"driver_id": [' + b"1," * MAX_BODY_BYTES + b"1]}}"
    status, answer = server.json("POST", "/get-online-features", raw=big, key=key)
    assert status == 413 and f"limit of {MAX_BODY_BYTES:,}" in answer["error"]["message"]
    status, answer = server.json("POST", "/get-online-features", raw=iter([big[:40_000], big[40_000:]]), key=key)
    assert status == 413 and "at least" in answer["error"]["message"]
    assert server.json("GET", "/nowhere")[0] == 404
    assert server.json("GET", "/push")[0] == 405
    status, answer = server.json("GET", "/views/nope", key=key)
    assert status == 404 and "known views: ['driver_live', 'driver_stats', 'short_lived']" in answer["error"]["message"]
    status, answer = server.json("GET", "/views/driver_stats", key=key)
    assert (
        status == 200
        and answer["ttl"] == "1d"
        and answer["owner"] == "team:serving"
        and answer["tags"] == {"tier": "gold"}
    )
    assert answer["features"][0] == {"name": "conv_rate", "dtype": "Float64", "description": ""}


def test_metrics_parse_as_prometheus_text(server, store):
    write_stats(store, datetime.now(UTC))
    server.call(
        "POST",
        "/get-online-features",
        {"features": ["driver_stats:trips"], "entities": {"driver_id": [1, 2]}},
        key=KEYS["reader"],
    )
    status, headers, payload = server.call("GET", "/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain")
    families = {family.name: family for family in text_string_to_metric_families(payload.decode())}
    requests = {
        (sample.labels["endpoint"], sample.labels["status"]): sample.value
        for sample in families["feature_server_requests"].samples
        if sample.name == "feature_server_requests_total"
    }
    assert requests[("/get-online-features", "200")] >= 1
    assert {"feature_server_request_duration_seconds", "feature_server_entities_per_request"} <= set(families)
    assert "feature_server_online_store_errors" in families
    ages = {
        sample.labels["view"]: sample.value for sample in families["feature_server_newest_value_age_seconds"].samples
    }
    assert 0 <= ages["driver_stats"] < 3600 * 2


def test_reads_are_counted_per_feature_service_and_caller_on_metrics(server, store):
    write_stats(store, datetime.now(UTC))
    body = {"feature_service": "ranking", "entities": {"driver_id": [1, 2, 3]}}
    assert server.json("POST", "/get-online-features", body, key=KEYS["narrow"])[0] == 200
    families = {
        family.name: family for family in text_string_to_metric_families(server.call("GET", "/metrics")[2].decode())
    }

    def counts(name: str, label: str) -> dict[str, float]:
        return {
            sample.labels[label]: sample.value for sample in families[name].samples if sample.name.endswith("_total")
        }

    assert counts("feature_store_service_reads", "service")["ranking"] >= 1
    assert counts("feature_store_caller_reads", "caller")["narrow"] >= 1
    assert counts("feature_store_feature_reads", "feature")["driver_live:rate"] >= 1


def test_materialize_submits_one_dagster_run_per_view_and_answers_202_with_their_ids(tmp_path, redis_url, monkeypatch):
    from dagster import DagsterInstance

    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(
        "telemetry:\n  enabled: false\ncode_servers:\n  wait_for_local_processes_on_shutdown: true\n"
    )
    (tmp_path / "workspace.yaml").write_text(
        "load_from:\n  - python_module:\n      module_name: tests.mixed_start_views\n      attribute: defs\n"
        f"      working_directory: {ROOT}\n"
    )
    environment = {
        "REDIS_URL": redis_url,
        "OFFLINE_ROOT": str(tmp_path / "offline"),
        "DAGSTER_HOME": str(home),
        "FEATURE_STORE_AUDIT_LOG": str(tmp_path / "audit.log"),
    }
    running = Server(tmp_path, environment, repository="tests.mixed_start_views:repository")
    try:
        body = {"feature_views": ["since_the_tenth"], "start_ts": "2025-01-10T00:00:00Z", "end_ts": "2025-01-11"}
        status, answer = running.json("POST", "/materialize", body)
        assert status == 202, answer
        run_id = answer["run_ids"][0]
        assert answer["runs"] == [
            {"run_id": answer["run_ids"][0], "view": "since_the_tenth", "partitions": ["2025-01-10", "2025-01-11"]}
        ]
        status, answer = running.json("POST", "/materialize", {**body, "feature_views": ["since_never"]})
        assert status == 404 and "unknown feature view 'since_never'" in answer["error"]["message"]
        status, answer = running.json("POST", "/materialize", {**body, "start_ts": "2025-01-08"})
        assert status == 422 and "outside its partitions" in answer["error"]["message"]
    finally:
        running.stop()
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with DagsterInstance.get() as instance:
        assert instance.get_run_by_id(run_id).status.value == "QUEUED"
    lines = [json.loads(line) for line in (tmp_path / "audit.log").read_text().splitlines()]
    assert [(line["who"], line["action"], line["status"]) for line in lines] == [
        ("anonymous", "materialize", 202),
        ("anonymous", "materialize", 404),
        ("anonymous", "materialize", 422),
    ]
    assert lines[0]["target"]["views"] == ["since_the_tenth"] and lines[0]["target"]["run_ids"]


def test_health_is_503_with_a_message_while_redis_is_stopped(tmp_path):
    redis_server = RedisServer().start()
    running = Server(tmp_path, {"REDIS_URL": redis_server.url, "OFFLINE_ROOT": str(tmp_path / "offline")})
    try:
        assert running.call("GET", "/health")[0] == 200
        redis_server.kill()
        status, answer = running.json("GET", "/health")
        assert status == 503 and "Redis does not answer PING" in answer["error"]["message"]
        body = {"features": ["driver_stats:trips"], "entities": {"driver_id": [1]}}
        status, answer = running.json("POST", "/get-online-features", body)
        assert status == 503 and answer["error"]["type"] == "OnlineStoreError"
    finally:
        running.stop()
        redis_server.stop()
    assert "no API keys configured" in running.log.read_text() and "the server is open" in running.log.read_text()


def test_hash_key_prints_the_digest_line_of_the_keys_file(capsys, monkeypatch):
    from feature_assets.serving.cli import main

    monkeypatch.setattr(main, "NOUNS", ("serve",))
    assert main.main(["hash-key", "s3cret"]) == 0
    assert capsys.readouterr().out == f"sha256: {hashlib.sha256(b's3cret').hexdigest()}\n"
