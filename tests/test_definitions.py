"""Invalid feature definitions fail at import with a message naming the view and the field."""

import polars as pl
import pytest

from feature_assets import Aggregation, Entity, FeatureRepository, FeatureService, FeatureView, Field, ParquetSource
from feature_assets.language.errors import DefinitionError, FeatureReferenceError

DRIVER = Entity("driver", ["driver_id"])
SOURCE = ParquetSource("trips", "raw/trips/*.parquet", timestamp_field="requested_at")


def view(name: str = "driver_stats", **overrides) -> FeatureView:
    settings = dict(entities=[DRIVER], source=SOURCE, schema=[Field("fare", pl.Float64)])
    settings.update(overrides)
    return FeatureView(name, **settings)


@pytest.mark.parametrize("bad", ["DriverStats", "1stats", "driver-stats", "", "stats!"])
def test_a_bad_view_name_is_rejected_naming_the_rule(bad):
    with pytest.raises(DefinitionError, match=r"FeatureView: invalid name .*\[a-z\]\[a-z0-9_\]\*"):
        view(bad)


def test_a_bad_field_name_is_rejected_naming_the_field():
    with pytest.raises(DefinitionError, match="Field: invalid name 'Fare'"):
        Field("Fare", pl.Float64)


def test_a_field_may_not_take_a_reserved_timestamp_name():
    with pytest.raises(DefinitionError, match="'event_timestamp'.*reserved"):
        Field("event_timestamp", pl.Datetime)


def test_duplicate_field_names_in_a_view_are_rejected():
    with pytest.raises(DefinitionError, match=r"FeatureView 'driver_stats': duplicate field names \['fare'\]"):
        view(schema=[Field("fare", pl.Float64), Field("fare", pl.Int64)])


def test_duplicate_view_names_in_a_repository_are_rejected():
    with pytest.raises(DefinitionError, match="FeatureView 'driver_stats' is defined twice"):
        FeatureRepository([view(), view()])


def test_a_field_named_like_a_join_key_is_rejected():
    with pytest.raises(DefinitionError, match="field 'driver_id' has the name of a join key"):
        view(schema=[Field("driver_id", pl.Int64)])


def test_an_entity_redefined_with_other_join_keys_is_rejected():
    other_driver = Entity("driver", ["driver_uuid"])
    with pytest.raises(DefinitionError, match="Entity 'driver' is defined twice.*FeatureView 'b'"):
        FeatureRepository([view("a"), view("b", entities=[other_driver])])


def test_key_dtypes_for_an_unknown_join_key_are_rejected():
    with pytest.raises(DefinitionError, match="Entity 'driver': key_dtypes names 'driver_uuid'"):
        Entity("driver", ["driver_id"], key_dtypes={"driver_uuid": pl.String})


def test_transformation_and_aggregations_together_are_rejected():
    with pytest.raises(
        DefinitionError, match="FeatureView 'driver_stats': give either a transformation or aggregations"
    ):
        view(schema=[], transformation=lambda rows: rows, aggregations=[Aggregation("fare", "sum", "1d")])


def test_an_unknown_aggregation_function_is_rejected():
    with pytest.raises(DefinitionError, match="Aggregation of 'fare': unknown function 'median'"):
        Aggregation("fare", "median", "1d")


def test_a_window_that_is_not_a_multiple_of_the_step_is_rejected():
    with pytest.raises(DefinitionError, match="window 90m of 'fare_sum_90m' is not a multiple of the step 1h"):
        view(schema=[], aggregations=[Aggregation("fare", "sum", "90m")], step="1h")


def test_a_schema_field_no_aggregation_produces_is_rejected():
    with pytest.raises(DefinitionError, match=r"schema fields \['tip_sum_1d'\] are not produced by any aggregation"):
        view(schema=[Field("tip_sum_1d", pl.Float64)], aggregations=[Aggregation("fare", "sum", "1d")])


def test_an_unreadable_duration_is_rejected():
    with pytest.raises(DefinitionError, match="FeatureView 'driver_stats' ttl: cannot read duration '1 day'"):
        view(ttl="1 day")


def test_an_unsupported_dtype_is_rejected():
    with pytest.raises(DefinitionError, match="Field 'payload': unsupported dtype"):
        Field("payload", pl.Object)


def test_a_service_referencing_an_unknown_feature_is_rejected_naming_it():
    service = FeatureService("ranking", ["driver_stats:tips"])
    with pytest.raises(FeatureReferenceError, match="unknown feature 'tips' in view 'driver_stats'.*\\['fare'\\]"):
        FeatureRepository([view()], [service])


def test_a_service_referencing_an_unknown_view_is_rejected_naming_it():
    with pytest.raises(FeatureReferenceError, match="unknown feature view 'riders'"):
        FeatureRepository([view()], [FeatureService("ranking", ["riders:fare"])])


def test_a_malformed_feature_reference_is_rejected():
    with pytest.raises(DefinitionError, match="'fare' must be written 'view:feature'"):
        FeatureService("ranking", ["fare"])


def test_the_demo_repository_loads():
    from feature_assets.demo.views import repository

    assert set(repository.views) == {"driver_profile", "driver_trip_stats", "driver_activity_live", "customer_profile"}
    assert "trip_ranking" in repository.services


def test_an_owner_that_is_neither_an_email_nor_a_team_is_rejected():
    with pytest.raises(DefinitionError, match="owner 'bob' must be an email address or 'team:<name>'"):
        view(owner="bob")
    assert view(owner="team:rides").owner == "team:rides"


def test_the_code_location_loads_with_sources_views_online_tables_and_the_training_set():
    import dagster as dg

    from definitions import defs

    dg.Definitions.validate_loadable(defs)
    keys = {key.to_user_string() for key in defs.resolve_asset_graph().get_all_asset_keys()}
    assert {"source/trips", "driver_trip_stats", "online/driver_trip_stats", "training/trip_completion"} <= keys
    assert {s.name for s in defs.sensors} >= {"publish_online", "quality_alerts", "freshness_checks"}
