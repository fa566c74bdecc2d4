"""The plain-text quality report: latest partition, check results and statistics read from a real instance."""

from feature_assets.orchestration.project import build_definitions
from feature_assets.serving.cli.quality import main, quality_report
from resources.offline_store import OfflineStore
from resources.online_store import RedisOnlineStore
from tests.publishing_views import repository
from tests.test_publishing import REPOSITORY, materialize_view, write_day


def test_the_report_shows_the_latest_partition_its_checks_and_statistics(instance, tmp_path, redis_url):
    offline_store = OfflineStore(root=str(tmp_path / "offline"))
    write_day(offline_store, 3, [(1, 8, 4.0, "oslo"), (2, 9, 3.0, "bergen")])
    write_day(offline_store, 4, [(1, 8, 4.0, "oslo"), (2, 9, 9.9, None), (3, 10, 5.0, "oslo")])
    defs = build_definitions(repository, offline_store, RedisOnlineStore(url=redis_url, repository=REPOSITORY))
    assert materialize_view(defs, instance, "2025-01-03").success
    assert not materialize_view(defs, instance, "2025-01-04").success

    report = quality_report(instance, repository)

    lines = report.splitlines()
    assert lines[0] == "driver_quality"
    assert lines[2].startswith("offline: latest partition 2025-01-04, 3 rows, materialized ")
    assert "online:  latest published partition (none)" in lines
    schema = next(line for line in lines if line.startswith("schema "))
    assert schema.split()[:3] == ["schema", "2025-01-04", "FAILED"]
    assert schema.endswith("1 of 3 rows fail the schema")
    rating = next(line for line in lines if line.startswith("rating "))
    assert rating.split() == ["rating", "0", "4", "9.9", "6.3"]
    city = next(line for line in lines if line.startswith("city "))
    assert city.split() == ["city", "33.3333", "1"]


def test_the_report_of_an_empty_instance_says_nothing_was_materialized(instance):
    report = quality_report(instance, repository, view="driver_quality")
    assert "offline: not materialized yet" in report
    schema = next(line for line in report.splitlines() if line.startswith("schema "))
    assert schema.split() == ["schema", "-", "not", "run"]


def test_the_command_asks_for_dagster_home(monkeypatch, capsys):
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    assert main(["--repository", "tests.publishing_views:repository"]) == 2
    assert "DAGSTER_HOME" in capsys.readouterr().err


def test_the_command_prints_the_report_of_the_instance_under_dagster_home(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    assert main(["--view", "driver_quality", "--repository", "tests.publishing_views:repository"]) == 0
    assert capsys.readouterr().out.startswith("driver_quality\n")
    assert main(["--view", "nope", "--repository", "tests.publishing_views:repository"]) == 2
    assert "unknown feature view 'nope'" in capsys.readouterr().err
