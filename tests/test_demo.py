"""The demo's main job end to end at its default size: views, publishing, online read, training set, a clean UI."""

import dagster as dg
import polars as pl
from dagster import DagsterEventType

from feature_assets.demo.calendar import DEMO_DAYS, FIRST_DAY
from feature_assets.demo.main import main
from feature_assets.demo.views import repository
from feature_assets.demo.views.training_sets import trip_completion
from feature_assets.orchestration.project import build_definitions
from resources.offline_store import OfflineStore


def test_the_demo_builds_views_publishes_them_and_writes_the_training_set(tmp_path, monkeypatch, redis_url, capsys):
    monkeypatch.setenv("OFFLINE_ROOT", str(tmp_path / "data"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    monkeypatch.setenv("REDIS_URL", redis_url)
    main([])
    printed = capsys.readouterr().out
    published_views = [view for view in repository.views.values() if not view.streaming]
    partitions = DEMO_DAYS * len(published_views)
    assert (
        f"publishing sensor requested 3 runs; 3 succeeded, publishing {partitions} partitions to {redis_url}" in printed
    )
    assert "not_found" not in printed and "expired" not in printed, "the online read shows a value for every feature"
    assert "5. streaming: a stream worker process applied 300 pushed trip events" in printed

    store = OfflineStore(root=str(tmp_path / "data"))
    for view in repository.views.values():
        assert store.list_partitions(view)[0] == FIRST_DAY == view.start_date
        assert len(store.list_partitions(view)) == DEMO_DAYS
    training = pl.read_parquet(store.resolve(trip_completion.output_path))
    assert training.height == 100_000
    assert training["rating"].null_count() < training.height

    with dg.DagsterInstance.get() as instance:
        records = instance.event_log_storage.get_logs_for_all_runs_by_log_id(
            dagster_event_type=DagsterEventType.ASSET_CHECK_EVALUATION, limit=10_000
        )
        evaluations = [record.dagster_event.event_specific_data for record in records.values()]
        failed = [(e.asset_key.to_user_string(), e.check_name, e.partition) for e in evaluations if not e.passed]
        checked = DEMO_DAYS * (4 * len(repository.views) + len(published_views))
        assert len(evaluations) >= checked and failed == [], "no warm-up day trips a check"

        defs = build_definitions(repository, store)
        sensor = defs.resolve_sensor_def("publish_online")
        fresh_tick = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, definitions=defs))
        assert fresh_tick.run_requests == [], "the UI's sensor finds everything the demo published already online"
