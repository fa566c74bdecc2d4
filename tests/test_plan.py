"""Plan and apply: the applied snapshot is deterministic, the plan lists what changed field by field, a breaking
change needs a version bump, apply records only what plan accepts, and YAML export/import round-trips."""

import copy
import json
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from feature_assets.demo.calendar import FIRST_DAY
from feature_assets.language.entity import Entity
from feature_assets.language.errors import DefinitionError
from feature_assets.language.feature_service import FeatureService
from feature_assets.language.feature_view import Aggregation, FeatureView
from feature_assets.language.field import Field
from feature_assets.language.on_demand import OnDemandFeatureView, RequestSource
from feature_assets.language.repository import FeatureRepository
from feature_assets.language.sources import ParquetSource, PushSource
from feature_assets.serving.cli import main as cli
from feature_assets.serving.definition_diff import Plan, plan_changes
from feature_assets.serving.definition_schema import empty_snapshot
from feature_assets.serving.definition_snapshot import read_applied, snapshot_repository
from feature_assets.serving.definition_yaml import export_yaml, import_yaml

ROOT = Path(__file__).resolve().parent.parent
DRIVER = Entity("driver", ["driver_id"])
PROFILES = ParquetSource("profiles", "raw/profiles/*.parquet", timestamp_field="ts")
TRIPS = ParquetSource("trips", "raw/trips/*.parquet", timestamp_field="ts")


def doubled(rows):
    return rows.with_columns(pl.col("rating") * 2)


def doubled_again(rows):
    """The same logic as `doubled`, written differently."""
    # only the layout, the name and this comment differ
    return rows.with_columns(
        pl.col("rating") * 2,
    )


def tripled(rows):
    return rows.with_columns(pl.col("rating") * 3)


def profile(**changes) -> FeatureView:
    arguments = {
        "entities": [DRIVER],
        "source": PROFILES,
        "schema": [Field("rating", pl.Float64, min_value=1.0, max_value=5.0), Field("trips", pl.Int64)],
        "ttl": "2d",
        "owner": "team:ops",
        "tags": {"tier": "gold"},
        "description": "Driver profile",
        "start_date": "2025-01-01",
    }
    return FeatureView("driver_profile", **(arguments | changes))


def stats(**changes) -> FeatureView:
    arguments = {
        "entities": [DRIVER],
        "source": TRIPS,
        "aggregations": [Aggregation("fare", "sum", "1d", name="fare_1d"), Aggregation("fare", "count", "7d")],
        "step": "1h",
        "start_date": "2025-01-01",
    }
    return FeatureView("driver_stats", **(arguments | changes))


RANKING = FeatureService("ranking", ["driver_profile:rating", "driver_stats:fare_1d"])
BASE = FeatureRepository([profile(), stats()], services=[RANKING])
LONGER_TTL = FeatureRepository([profile(ttl="3d"), stats()], services=[RANKING])
RETYPED = FeatureRepository(
    [profile(schema=[Field("rating", pl.Float32), Field("trips", pl.Int64)]), stats()], services=[RANKING]
)


def plan_of(before: FeatureRepository, after: FeatureRepository) -> Plan:
    return plan_changes(snapshot_repository(before), snapshot_repository(after))


def run(capsys, monkeypatch, *argv: str) -> tuple[int, str, str]:
    """Run the command line with the definitions noun, returning the exit code, stdout and stderr."""
    monkeypatch.setattr(cli, "NOUNS", ("definitions",))
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_the_snapshot_is_the_same_in_a_fresh_interpreter():
    script = (
        "import json; from feature_assets.demo.views import repository; "
        "from feature_assets.serving.definition_snapshot import snapshot_repository; "
        "print(json.dumps(snapshot_repository(repository), sort_keys=True))"
    )
    outputs = [
        subprocess.run(
            [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120, check=True
        ).stdout
        for _ in range(2)
    ]
    from feature_assets.demo.views import repository

    assert outputs[0] == outputs[1] == json.dumps(snapshot_repository(repository), sort_keys=True) + "\n"


def test_the_demo_repository_has_no_changes_against_applied_definitions_json():
    from feature_assets.demo.views import repository

    applied = read_applied(ROOT / "applied_definitions.json")
    current = snapshot_repository(repository)
    # The demo's views start on its first day, which moves with the calendar (as in test_asset_graph.py):
    # compare them as if they started on the day recorded when the demo was applied.
    for name, view in current["feature_views"].items():
        if view["start_date"] == FIRST_DAY.isoformat() and name in applied["feature_views"]:
            view["start_date"] = applied["feature_views"][name]["start_date"]
    plan = plan_changes(applied, current)
    assert plan.render() == "No changes to definitions", (
        "the demo's definitions differ from applied_definitions.json; run `feature-store apply` at the project root"
    )


def test_nothing_applied_means_every_definition_is_created():
    assert plan_changes(empty_snapshot(), snapshot_repository(BASE)).render() == "\n".join(
        [
            "Created entity driver",
            "Created data source profiles",
            "Created data source trips",
            "Created feature view driver_profile",
            "Created feature view driver_stats",
            "Created feature service ranking",
        ]
    )


def test_the_plan_lists_created_updated_and_deleted_objects_with_old_and_new_values():
    pushed = FeatureView(
        "driver_pushed",
        entities=[DRIVER],
        source=PushSource("driver_push", batch_source=TRIPS),
        schema=[Field("conv_rate", pl.Float64)],
    )
    changed = profile(
        schema=[
            Field("rating", pl.Float64, min_value=0.0, max_value=5.0),
            Field("trips", pl.Int64),
            Field("x", pl.Int8),
        ],
        ttl="3d",
        tags={"tier": "silver", "domain": "drivers"},
        online=False,
    )
    after = FeatureRepository([changed, pushed], services=[FeatureService("ranking", ["driver_profile:rating"])])
    plan = plan_of(BASE, after)
    assert not plan.refused
    lines = plan.render().splitlines()
    assert lines == [
        "Created data source driver_push",
        "Updated feature view driver_profile",
        "\tfeatures.rating.min_value: 1.0 -> 0.0",
        '\tfeatures.x: (absent) -> {"allowed_values": null, "description": "", "dtype": "Int8", "max_null_pct": null, '
        '"max_value": null, "min_value": null, "nullable": true}',
        "\tonline: true -> false",
        '\ttags.domain: (absent) -> "drivers"',
        '\ttags.tier: "gold" -> "silver"',
        '\tttl: "2d" -> "3d"',
        "Created feature view driver_pushed",
        "Deleted feature view driver_stats  (clients reading driver_stats fail once this is applied)",
        "Updated feature service ranking",
        '\tfeatures: ["driver_profile:rating", "driver_stats:fare_1d"] -> ["driver_profile:rating"]',
    ]


COUNT_7D = Aggregation("fare", "count", "7d")
BREAKING = [
    pytest.param(
        profile,
        {},
        {"schema": [Field("rating", pl.Float64, min_value=1.0, max_value=5.0)]},
        "feature 'trips' removed",
        id="removed feature",
    ),
    pytest.param(
        profile,
        {},
        {"schema": [Field("rating", pl.Float32), Field("trips", pl.Int64)]},
        "feature 'rating' retyped Float64 -> Float32",
        id="retyped feature",
    ),
    pytest.param(
        profile,
        {},
        {"entities": [Entity("driver", ["driver_id"], key_dtypes={"driver_id": pl.String})]},
        "join keys [driver_id: Int64] -> [driver_id: String]",
        id="key dtype",
    ),
    pytest.param(
        profile,
        {},
        {"entities": [Entity("driver", ["driver_uuid"])]},
        "join keys [driver_id: Int64] -> [driver_uuid: Int64]",
        id="join keys",
    ),
    pytest.param(profile, {}, {"source": TRIPS}, "source 'profiles' -> 'trips'", id="source"),
    pytest.param(profile, {}, {"transformation": doubled}, "transformation changed", id="transformation added"),
    pytest.param(
        profile, {"transformation": doubled}, {"transformation": tripled}, "transformation changed", id="python"
    ),
    pytest.param(
        profile,
        {"sql": "SELECT * FROM source"},
        {"sql": "SELECT * FROM source WHERE rating > 1"},
        "transformation changed",
        id="sql",
    ),
    pytest.param(
        stats,
        {},
        {"aggregations": [Aggregation("fare", "mean", "1d", name="fare_1d"), COUNT_7D]},
        "aggregation 'fare_1d' function sum -> mean",
        id="aggregation function",
    ),
    pytest.param(
        stats,
        {},
        {"aggregations": [Aggregation("tip", "sum", "1d", name="fare_1d"), COUNT_7D]},
        "aggregation 'fare_1d' column fare -> tip",
        id="aggregation column",
    ),
    pytest.param(
        stats,
        {},
        {"aggregations": [Aggregation("fare", "sum", "2d", name="fare_1d"), COUNT_7D]},
        "aggregation 'fare_1d' window 1d -> 2d",
        id="aggregation window",
    ),
    pytest.param(stats, {}, {"step": "30m"}, "step 1h -> 30m", id="step"),
]


@pytest.mark.parametrize(("factory", "before", "after", "reason"), BREAKING)
def test_a_breaking_change_is_refused_without_a_version_bump_and_accepted_with_one(factory, before, after, reason):
    applied = FeatureRepository([factory(**before)])
    name = factory().name
    refused = plan_of(applied, FeatureRepository([factory(**after)]))
    assert refused.refusals == (
        f"FeatureView {name!r}: {reason} (breaking); bump version to 2 "
        "(keep version 1 in previous_versions while clients move)",
    )
    assert "(breaking)" in refused.render()
    bumped = plan_of(applied, FeatureRepository([factory(**after, version=2)]))
    assert not bumped.refused
    assert bumped.render().splitlines()[-2:] == [
        f"Deleted feature view {name}@v1  (clients reading version 1 lose it; keep it in previous_versions while "
        "they move)",
        f"Created feature view {name}@v2",
    ]


NON_BREAKING = [
    pytest.param({"ttl": "3d"}, 'ttl: "2d" -> "3d"', id="ttl"),
    pytest.param({"owner": "ops@example.com"}, 'owner: "team:ops" -> "ops@example.com"', id="owner"),
    pytest.param({"tags": {}}, 'tags.tier: "gold" -> (absent)', id="tags"),
    pytest.param({"description": "Profiles"}, 'description: "Driver profile" -> "Profiles"', id="description"),
    pytest.param({"online": False}, "online: true -> false", id="online"),
    pytest.param({"start_date": "2025-02-01"}, 'start_date: "2025-01-01" -> "2025-02-01"', id="start date"),
    pytest.param(
        {
            "schema": [
                Field("rating", pl.Float64, nullable=False, min_value=1.0, max_value=5.0),
                Field("trips", pl.Int64),
            ]
        },
        "features.rating.nullable: true -> false",
        id="checks",
    ),
    pytest.param(
        {"schema": [*profile().schema, Field("years", pl.Int64, "Years active")]},
        'features.years: (absent) -> {"allowed_values": null, "description": "Years active", "dtype": "Int64", '
        '"max_null_pct": null, "max_value": null, "min_value": null, "nullable": true}',
        id="added feature",
    ),
]


@pytest.mark.parametrize(("changes", "line"), NON_BREAKING)
def test_a_change_readers_do_not_notice_is_an_update_without_a_bump(changes, line):
    plan = plan_of(FeatureRepository([profile()]), FeatureRepository([profile(**changes)]))
    assert not plan.refused
    assert plan.render() == f"Updated feature view driver_profile\n\t{line}"


def test_a_reformatted_transformation_keeps_its_hash_and_only_its_name_changes():
    plan = plan_of(
        FeatureRepository([profile(transformation=doubled)]),
        FeatureRepository([profile(transformation=doubled_again)]),
    )
    assert not plan.refused
    assert plan.render() == (
        "Updated feature view driver_profile\n"
        '\ttransformation.function: "tests.test_plan.doubled" -> "tests.test_plan.doubled_again"'
    )


def test_an_entity_whose_key_dtype_changes_breaks_every_view_that_uses_it():
    uuid_driver = Entity("driver", ["driver_id"], key_dtypes={"driver_id": pl.String})
    plan = plan_of(BASE, FeatureRepository([profile(entities=[uuid_driver]), stats(entities=[uuid_driver])]))
    assert [refusal.split(":")[0] for refusal in plan.refusals] == [
        "FeatureView 'driver_profile'",
        "FeatureView 'driver_stats'",
    ]
    assert all("join keys [driver_id: Int64] -> [driver_id: String] (breaking)" in r for r in plan.refusals)
    assert plan.render().startswith(
        "Updated entity driver\n"
        '\tjoin_keys: [{"dtype": "Int64", "name": "driver_id"}] -> [{"dtype": "String", "name": "driver_id"}]'
    )


def test_a_version_that_goes_down_is_refused():
    plan = plan_of(FeatureRepository([profile(version=2)]), FeatureRepository([profile()]))
    assert plan.refusals == (
        "FeatureView 'driver_profile': version went down from 2 to 1; versions only increase, so set version to 3",
    )


def test_previous_versions_are_in_the_snapshot_and_one_kept_as_applied_is_no_change():
    retyped = profile(schema=[Field("rating", pl.Float32), Field("trips", pl.Int64)], version=2)
    side_by_side = FeatureRepository([retyped], previous_versions=[profile()])
    snapshot = snapshot_repository(side_by_side)
    previous = snapshot["feature_views"]["driver_profile"]["previous_versions"]
    assert [spec["version"] for spec in previous] == [1]
    assert previous[0]["features"]["rating"]["dtype"] == "Float64"
    plan = plan_of(FeatureRepository([profile()]), side_by_side)
    assert (plan.render(), plan.refused) == ("Created feature view driver_profile@v2", False)
    changed_previous = FeatureRepository([retyped], previous_versions=[profile(schema=[Field("rating", pl.Float64)])])
    assert plan_of(side_by_side, changed_previous).refusals == (
        "FeatureView 'driver_profile@v1': feature 'trips' removed (breaking); version 1 is a previous version that "
        "clients still read, so restore its applied definition and make the change in the current version",
    )


def test_an_on_demand_view_change_is_shown_with_a_warning_since_it_has_no_versions():
    request = RequestSource("trip_request", [Field("fare", pl.Float64)])

    def scored(expression: str) -> FeatureRepository:
        on_demand = OnDemandFeatureView(
            "trip_score",
            sources=[BASE.views["driver_profile"], request],
            schema=[Field("score", pl.Float64)],
            expressions={"score": expression},
        )
        return FeatureRepository(list(BASE.views.values()), on_demand_views=[on_demand])

    plan = plan_of(scored("fare * rating"), scored("fare * rating * 2"))
    assert not plan.refused
    assert plan.render().splitlines()[0] == (
        "Updated on demand feature view trip_score  (on demand views have no versions: readers get the new "
        "definition at once)"
    )


def test_apply_records_the_snapshot_atomically_and_then_plan_shows_no_changes(tmp_path, capsys, monkeypatch):
    path = tmp_path / "applied.json"
    code, out, _ = run(capsys, monkeypatch, "apply", "--repository", "tests.test_plan:BASE", "--snapshot", str(path))
    assert code == 0
    assert out.startswith("Created entity driver\n")
    assert out.endswith(f"Applied: {path} records these definitions\n")
    assert json.loads(path.read_text()) == snapshot_repository(BASE)
    first_inode = path.stat().st_ino
    code, out, _ = run(
        capsys, monkeypatch, "apply", "--repository", "tests.test_plan:LONGER_TTL", "--snapshot", str(path)
    )
    assert (code, out.splitlines()[:2]) == (0, ["Updated feature view driver_profile", '\tttl: "2d" -> "3d"'])
    assert path.stat().st_ino != first_inode, "apply replaces the file instead of rewriting it in place"
    assert [p.name for p in tmp_path.iterdir()] == ["applied.json"]
    code, out, _ = run(
        capsys, monkeypatch, "plan", "--repository", "tests.test_plan:LONGER_TTL", "--snapshot", str(path)
    )
    assert (code, out) == (0, "No changes to definitions\n")


def test_apply_refuses_a_breaking_change_and_leaves_the_snapshot_as_it_was(tmp_path, capsys, monkeypatch):
    path = tmp_path / "applied.json"
    assert run(capsys, monkeypatch, "apply", "--repository", "tests.test_plan:BASE", "--snapshot", str(path))[0] == 0
    before = path.read_bytes()
    code, out, err = run(
        capsys, monkeypatch, "apply", "--repository", "tests.test_plan:RETYPED", "--snapshot", str(path)
    )
    assert code == 3
    assert '\tfeatures.rating.dtype: "Float64" -> "Float32"  (breaking)' in out.splitlines()
    assert err.splitlines() == [
        "error: FeatureView 'driver_profile': feature 'rating' retyped Float64 -> Float32 (breaking); bump version "
        "to 2 (keep version 1 in previous_versions while clients move)",
        f"error: nothing applied; {path} is unchanged",
    ]
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["applied.json"]


def test_plan_reads_the_snapshot_named_by_the_environment_or_in_the_working_directory(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FEATURE_SNAPSHOT", raising=False)
    assert run(capsys, monkeypatch, "apply", "--repository", "tests.test_plan:BASE")[0] == 0
    assert (tmp_path / "applied_definitions.json").exists()
    assert run(capsys, monkeypatch, "plan", "--repository", "tests.test_plan:BASE")[1] == "No changes to definitions\n"
    monkeypatch.setenv("FEATURE_SNAPSHOT", str(tmp_path / "elsewhere.json"))
    code, out, _ = run(capsys, monkeypatch, "plan", "--repository", "tests.test_plan:BASE")
    assert (code, out.splitlines()[0]) == (0, "Created entity driver")


def test_plan_as_json_and_its_exit_codes(tmp_path, capsys, monkeypatch):
    path = tmp_path / "applied.json"
    run(capsys, monkeypatch, "apply", "--repository", "tests.test_plan:BASE", "--snapshot", str(path))
    code, out, err = run(
        capsys, monkeypatch, "plan", "--json", "--repository", "tests.test_plan:LONGER_TTL", "--snapshot", str(path)
    )
    assert (code, err) == (0, "")
    assert json.loads(out) == {
        "changes": [
            {
                "action": "Updated",
                "kind": "feature view",
                "name": "driver_profile",
                "fields": [{"path": "ttl", "old": "2d", "new": "3d", "breaking": False}],
            }
        ],
        "refused": False,
        "refusals": [],
    }
    code, out, err = run(
        capsys, monkeypatch, "plan", "--json", "--repository", "tests.test_plan:RETYPED", "--snapshot", str(path)
    )
    plan = json.loads(out)
    assert (code, plan["refused"], len(plan["refusals"])) == (3, True, 1)
    assert plan["changes"][0]["fields"][0] == {
        "path": "features.rating.dtype",
        "old": "Float64",
        "new": "Float32",
        "breaking": True,
    }
    assert err.startswith("error: FeatureView 'driver_profile': feature 'rating' retyped")
    path.write_text("{")
    code, _, err = run(capsys, monkeypatch, "plan", "--repository", "tests.test_plan:BASE", "--snapshot", str(path))
    assert code == 1
    assert err.startswith(f"error: {path} is not valid JSON")


def test_export_then_import_shows_no_changes(tmp_path, capsys, monkeypatch):
    document = tmp_path / "definitions.yaml"
    code, out, _ = run(capsys, monkeypatch, "export", "--repository", "tests.test_plan:BASE", "--output", str(document))
    assert (code, out) == (0, "")
    assert import_yaml(document.read_text(), "definitions.yaml") == snapshot_repository(BASE)
    code, out, _ = run(capsys, monkeypatch, "import", str(document), "--repository", "tests.test_plan:BASE")
    assert (code, out) == (0, "No changes to definitions\n")
    code, out, _ = run(capsys, monkeypatch, "import", str(document), "--repository", "tests.test_plan:LONGER_TTL")
    assert (code, out) == (0, 'Updated feature view driver_profile\n\tttl: "3d" -> "2d"\n')
    code, out, _ = run(capsys, monkeypatch, "export", "--repository", "tests.test_plan:BASE")
    assert out == document.read_text()


def test_the_demo_round_trips_through_yaml():
    from feature_assets.demo.views import repository

    snapshot = snapshot_repository(repository)
    assert import_yaml(export_yaml(snapshot), "demo.yaml") == snapshot


def _broken(change) -> str:
    document = copy.deepcopy(snapshot_repository(BASE))
    change(document)
    return export_yaml(document)


MALFORMED = [
    pytest.param(
        lambda d: d["feature_views"]["driver_profile"]["features"]["rating"].update(dtypo="Int64"),
        "feature_views.driver_profile.features.rating.dtypo: unknown key; remove it or fix its spelling",
        id="unknown key",
    ),
    pytest.param(
        lambda d: d["sources"]["trips"].pop("path"), "sources.trips.path: missing; add it", id="missing field"
    ),
    pytest.param(lambda d: d.pop("feature_services"), "feature_services: missing; add it", id="missing section"),
    pytest.param(
        lambda d: d["feature_views"]["driver_profile"]["features"]["rating"].update(dtype="Int46"),
        "feature_views.driver_profile.features.rating.dtype: unknown dtype 'Int46'",
        id="bad dtype",
    ),
    pytest.param(
        lambda d: d["feature_views"]["driver_stats"].update(ttl="2 days"),
        "feature_views.driver_stats.ttl: duration: cannot read duration '2 days'",
        id="bad duration",
    ),
]


@pytest.mark.parametrize(("change", "message"), MALFORMED)
def test_a_malformed_document_names_the_bad_path(change, message):
    with pytest.raises(DefinitionError) as raised:
        import_yaml(_broken(change), "broken.yaml")
    assert str(raised.value).startswith("broken.yaml is not a definitions snapshot; fix these paths in it:\n  ")
    assert f"\n  {message}" in str(raised.value)


def test_import_names_a_yaml_syntax_error_by_line_and_a_bad_path_through_the_command_line(
    tmp_path, capsys, monkeypatch
):
    document = tmp_path / "broken.yaml"
    document.write_text("entities: [1\n")
    code, _, err = run(capsys, monkeypatch, "import", str(document), "--repository", "tests.test_plan:BASE")
    assert code == 1
    assert err.startswith(f"error: {document} is not valid YAML at line 2, column 1:")
    document.write_text(_broken(lambda d: d["entities"]["driver"].pop("join_keys")))
    code, _, err = run(capsys, monkeypatch, "import", str(document), "--repository", "tests.test_plan:BASE")
    assert (code, err) == (
        1,
        f"error: {document} is not a definitions snapshot; fix these paths in it:\n"
        "  entities.driver.join_keys: missing; add it\n",
    )
