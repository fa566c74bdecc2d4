"""The offline pipeline against a real S3-protocol server: same partitions as on a local folder."""

from datetime import timedelta

import dagster as dg
import polars as pl

from feature_assets.demo.calendar import FIRST_DAY
from feature_assets.demo.data import DemoSize, write_demo_sources
from feature_assets.demo.views import repository
from feature_assets.orchestration.view_assets import build_view_asset
from resources.offline_store import OfflineStore

START = FIRST_DAY
DAYS = [START + timedelta(days=offset) for offset in range(3)]


def backfill(store: OfflineStore, days: int) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [build_view_asset(view) for view in repository.views.values()],
        instance=dg.DagsterInstance.ephemeral(),
        resources={"offline_store": store},
        tags={
            "dagster/asset_partition_range_start": START.isoformat(),
            "dagster/asset_partition_range_end": DAYS[days - 1].isoformat(),
        },
    )


def test_materializing_views_on_s3_gives_the_same_partitions_as_local(s3_offline_store, tmp_path):
    size = DemoSize(trips=3_000, days=3, drivers=40, customers=60)
    local = OfflineStore(root=str(tmp_path / "local"))
    for store in (s3_offline_store, local):
        write_demo_sources(store, size, START)
        assert backfill(store, days=3).success

    for view in repository.views.values():
        assert s3_offline_store.list_partitions(view) == DAYS
        for day in s3_offline_store.list_partitions(view):
            on_s3 = s3_offline_store.read_partition(view, day)
            assert on_s3.height > 0
            assert on_s3.equals(local.read_partition(view, day)), f"{view.name} {day} differs between S3 and local"
        whole = s3_offline_store.scan_partitions(view).select(pl.len()).collect().item()
        assert whole == local.scan_partitions(view).select(pl.len()).collect().item()
    assert s3_offline_store.partition_files(repository.views["driver_profile"])[0].startswith("s3://")
