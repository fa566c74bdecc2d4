"""Training-set assets materialize through Dagster to the same rows as a direct point-in-time join."""

from datetime import UTC, datetime, timedelta

import dagster as dg
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from feature_assets import Entity, FeatureRepository, FeatureService, FeatureView, Field, ParquetSource
from feature_assets.language.errors import DefinitionError, FeatureReferenceError
from feature_assets.language.training_set import TrainingSet
from feature_assets.orchestration.training_assets import build_training_set_asset
from feature_assets.retrieval.point_in_time import get_historical_features
from resources.offline_store import OfflineStore

DRIVER = Entity("driver", ["driver_id"])
SOURCE = ParquetSource("driver_events", "raw/driver_events/*.parquet", "ts")
DRIVER_STATS = FeatureView(
    "driver_stats",
    entities=[DRIVER],
    source=SOURCE,
    ttl="1d",
    schema=[Field("conv_rate", pl.Float64), Field("trips", pl.Int64)],
)
DRIVER_PROFILE = FeatureView(
    "driver_profile", entities=[DRIVER], source=SOURCE, schema=[Field("city", pl.String), Field("trips", pl.Int64)]
)
REPOSITORY = FeatureRepository([DRIVER_STATS, DRIVER_PROFILE])
LABELS = ParquetSource("trip_outcomes", "labels/trip_outcomes.parquet", timestamp_field="requested_at")
START = datetime(2024, 6, 1, tzinfo=UTC)
FEATURES = ["driver_stats:conv_rate", "driver_stats:trips", "driver_profile:city"]


def _populate(store: OfflineStore) -> pl.DataFrame:
    """Write three days of both views and the label rows; return the label rows."""
    for offset in range(3):
        day = START + timedelta(days=offset)
        times = [day + timedelta(hours=6 * i) for i in range(4)]
        stats = pl.DataFrame(
            {
                "driver_id": [1, 2] * 2,
                "event_timestamp": times,
                "created_timestamp": times,
                "conv_rate": [0.1 * (offset + i) for i in range(4)],
                "trips": [offset * 10 + i for i in range(4)],
            },
            schema=DRIVER_STATS.output_schema,
        )
        store.write_partition(DRIVER_STATS, day.date(), stats)
    profile = pl.DataFrame(
        {"driver_id": [1], "event_timestamp": [START], "created_timestamp": [START], "city": ["Lyon"], "trips": [0]},
        schema=DRIVER_PROFILE.output_schema,
    )
    store.write_partition(DRIVER_PROFILE, START.date(), profile)
    labels = pl.DataFrame(
        {
            "driver_id": [1, 2, 1, 3, 2],
            "requested_at": [START + timedelta(hours=h) for h in (1, 7, 30, 30, 200)],
            "completed": [True, False, True, True, None],
        }
    )
    store.write_file(LABELS.path, labels)
    return labels


def _materialize(store: OfflineStore, training_set: TrainingSet) -> tuple[pl.DataFrame, dict]:
    asset = build_training_set_asset(training_set, REPOSITORY)
    result = dg.materialize([asset], resources={"offline_store": store})
    assert result.success
    (materialization,) = result.asset_materializations_for_node(asset.op.name)
    path = store.resolve(training_set.output_path)
    return pl.read_parquet(path, storage_options=store.storage_options), materialization.metadata


def test_materialized_training_set_equals_a_direct_point_in_time_join(tmp_path):
    store = OfflineStore(root=str(tmp_path))
    labels = _populate(store)
    written, metadata = _materialize(store, TrainingSet("trip_model", FEATURES, LABELS))
    direct = get_historical_features(
        labels, FEATURES, repository=REPOSITORY, offline_store=store, timestamp_column="requested_at"
    )
    assert_frame_equal(written, direct)
    assert written["trips"].to_list() == [0, 1, 10, None, None]
    assert metadata["dagster/row_count"].value == 5
    assert metadata["features"].value == FEATURES
    assert metadata["conv_rate/null_pct"].value == pytest.approx(40.0)
    assert metadata["city/null_pct"].value == pytest.approx(60.0)
    schema = metadata["dagster/column_schema"].schema
    assert [(c.name, c.type) for c in schema.columns] == [(n, str(t)) for n, t in direct.schema.items()]
    assert not list((tmp_path / "training" / "trip_model").glob(".*.tmp"))


def test_rematerializing_replaces_the_previous_training_set(tmp_path):
    store = OfflineStore(root=str(tmp_path))
    labels = _populate(store)
    training_set = TrainingSet("trip_model", FEATURES, LABELS)
    _materialize(store, training_set)
    store.write_file(LABELS.path, labels.head(2))
    written, metadata = _materialize(store, training_set)
    assert written.height == 2
    assert metadata["dagster/row_count"].value == 2


def test_training_set_asset_depends_on_the_views_it_reads():
    service = FeatureService("trip_model", ["driver_stats:trips", "driver_profile:city"])
    training_set = TrainingSet("trip_model", service, LABELS, full_feature_names=True)
    asset = build_training_set_asset(training_set, REPOSITORY)
    spec = asset.specs_by_key[dg.AssetKey(["training", "trip_model"])]
    assert spec.group_name == "training"
    assert {dep.asset_key for dep in spec.deps} == {dg.AssetKey("driver_stats"), dg.AssetKey("driver_profile")}
    assert spec.kinds == {"polars", "duckdb", "parquet"}
    assert "offline_store" in asset.required_resource_keys
    assert asset.partitions_def is None


def test_full_feature_names_prefix_every_feature_column(tmp_path):
    store = OfflineStore(root=str(tmp_path))
    _populate(store)
    features = ["driver_stats:trips", "driver_profile:trips"]
    written, metadata = _materialize(store, TrainingSet("trips", features, LABELS, full_feature_names=True))
    assert written.columns[-2:] == ["driver_stats__trips", "driver_profile__trips"]
    assert "driver_profile__trips/null_pct" in metadata


def test_training_set_on_s3_equals_the_local_one(tmp_path, s3_offline_store):
    local = OfflineStore(root=str(tmp_path))
    _populate(local)
    _populate(s3_offline_store)
    training_set = TrainingSet("trip_model", FEATURES, LABELS)
    on_s3, _ = _materialize(s3_offline_store, training_set)
    on_disk, _ = _materialize(local, training_set)
    assert_frame_equal(on_s3, on_disk)


def test_a_bad_training_set_name_is_rejected():
    with pytest.raises(DefinitionError, match="TrainingSet: invalid name 'Trip-Model'"):
        TrainingSet("Trip-Model", FEATURES, LABELS)


def test_training_set_features_must_be_view_feature_references():
    with pytest.raises(DefinitionError, match="'trips' must be written 'view:feature'"):
        TrainingSet("trip_model", ["trips"], LABELS)
    with pytest.raises(DefinitionError, match="non-empty list of 'view:feature' or a FeatureService"):
        TrainingSet("trip_model", [], LABELS)


def test_an_unknown_feature_fails_when_the_asset_is_built():
    with pytest.raises(FeatureReferenceError, match="unknown feature 'speed' in view 'driver_stats'"):
        build_training_set_asset(TrainingSet("trip_model", ["driver_stats:speed"], LABELS), REPOSITORY)
