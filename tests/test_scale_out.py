"""Scale-out on Dagster's engines: backfills fan out per view, the executor comes from configuration."""

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from feature_assets import Entity, FeatureRepository, FeatureView, Field, ParquetSource
from feature_assets.language.asset_keys import view_asset_key
from feature_assets.language.errors import DefinitionError
from feature_assets.orchestration.executors import EXECUTOR_VARIABLE
from feature_assets.orchestration.project import build_definitions

ROOT = Path(__file__).resolve().parent.parent
DAGSTER = Path(sys.executable).with_name("dagster")
DRIVER = Entity("driver", ["driver_id"])
SOURCE = ParquetSource("scale_events", "raw/scale/*.parquet", timestamp_field="event_timestamp")


def view(name: str, **settings) -> FeatureView:
    return FeatureView(name, entities=[DRIVER], source=SOURCE, schema=[Field("trips", pl.Int64)], **settings)


def test_a_view_passes_its_execution_tags_to_its_step_e_g_kubernetes_resources():
    resources = {"container_config": {"resources": {"requests": {"cpu": "2", "memory": "8Gi"}}}}
    heavy = view("heavy", execution_tags={"dagster-k8s/config": resources})
    tags = build_definitions(FeatureRepository([heavy])).resolve_assets_def(view_asset_key(heavy)).node_def.tags
    assert json.loads(tags["dagster-k8s/config"]) == resources


def test_a_view_backfills_in_runs_of_its_partitions_per_run_else_in_one_run():
    fanned, single = view("fanned", partitions_per_run=7), view("single")
    graph = build_definitions(FeatureRepository([fanned, single])).resolve_asset_graph()
    assert graph.get(view_asset_key(fanned)).backfill_policy == dg.BackfillPolicy.multi_run(7)
    assert graph.get(view_asset_key(single)).backfill_policy == dg.BackfillPolicy.single_run()
    with pytest.raises(DefinitionError, match="partitions_per_run must be a positive integer"):
        view("bad", partitions_per_run=0)


@pytest.mark.parametrize(
    ("setting", "executor"),
    [
        ("", "multi_or_in_process_executor"),
        ("in_process", "in_process"),
        ("multiprocess", "multiprocess"),
        ("k8s", "k8s"),
    ],
)
def test_the_executor_is_chosen_by_configuration(monkeypatch, setting, executor):
    monkeypatch.setenv(EXECUTOR_VARIABLE, setting)
    defs = build_definitions(FeatureRepository([view("trips")]))
    assert defs.resolve_job_def("materialize_feature_views").executor_def.name == executor


def test_an_unknown_executor_is_refused_naming_the_choices(monkeypatch):
    monkeypatch.setenv(EXECUTOR_VARIABLE, "celery")
    with pytest.raises(DefinitionError, match="'celery' is not an executor; use one of in_process, multiprocess, k8s"):
        build_definitions(FeatureRepository([view("trips")]))


@pytest.mark.parametrize("setting", ["multiprocess", "k8s"])
def test_dagster_validates_the_project_definitions_with_each_executor(tmp_path, setting):
    environment = {
        **os.environ,
        EXECUTOR_VARIABLE: setting,
        "DAGSTER_HOME": str(tmp_path),
        "OFFLINE_ROOT": str(tmp_path),
    }
    done = subprocess.run(
        [str(DAGSTER), "definitions", "validate", "-m", "definitions"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "Validation successful" in done.stdout + done.stderr
