"""The demo's main job end to end on a small size: views, publishing, online read and training set."""

import polars as pl

from feature_assets.demo.main import main
from feature_assets.demo.views import repository
from feature_assets.demo.views.training_sets import trip_completion
from resources.offline_store import OfflineStore


def test_the_demo_builds_views_publishes_them_and_writes_the_training_set(tmp_path, monkeypatch, redis_url, capsys):
    monkeypatch.setenv("OFFLINE_ROOT", str(tmp_path / "data"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    monkeypatch.setenv("REDIS_URL", redis_url)
    main(["--rows", "3000", "--days", "3"])
    printed = capsys.readouterr().out
    assert f"publishing sensor requested 9 online partitions; 9 published to {redis_url}" in printed
    store = OfflineStore(root=str(tmp_path / "data"))
    for view in repository.views.values():
        assert len(store.list_partitions(view)) == 3
    training = pl.read_parquet(store.resolve(trip_completion.output_path))
    assert training.height == 3000
    assert training["rating"].null_count() < training.height
