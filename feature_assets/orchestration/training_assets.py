"""Training set assets: label rows joined point-in-time with features, materialized as one Parquet file."""

import hashlib

import dagster as dg
import polars as pl

from feature_assets.language.asset_keys import training_set_asset_key, view_asset_key
from feature_assets.language.repository import FeatureRepository
from feature_assets.language.training_set import TrainingSet
from feature_assets.retrieval.point_in_time import get_historical_features
from resources.offline_store import OfflineStore


def build_training_set_asset(training_set: TrainingSet, repository: FeatureRepository) -> dg.AssetsDefinition:
    """Return the asset that joins the training set's labels with its features and writes one Parquet file."""
    resolved = repository.resolve(training_set.features)
    references = [f"{key}:{feature}" for key in resolved.keys for feature in resolved.shown(key)]
    references += [
        f"{view.name}:{feature}" for view in resolved.on_demand for feature in resolved.on_demand_features[view.name]
    ]
    code_version = hashlib.sha256(
        "\n".join(
            [
                training_set.name,
                repr(training_set.labels),
                str(training_set.full_feature_names),
                *references,
                *(view.code_version for view in resolved.views),
                *(view.code_version for view in resolved.on_demand),
            ]
        ).encode()
    ).hexdigest()[:16]
    description = training_set.description or (
        f"Rows of {training_set.labels.name!r} joined point-in-time with {len(references)} features."
    )

    @dg.asset(
        key=training_set_asset_key(training_set),
        group_name="training",
        deps=[view_asset_key(view) for view in resolved.views],
        kinds={"polars", "duckdb", "parquet"},
        description=description,
        code_version=code_version,
    )
    def _training_set(offline_store: OfflineStore) -> dg.MaterializeResult:
        labels = pl.scan_parquet(
            offline_store.resolve(training_set.labels.path), storage_options=offline_store.storage_options
        ).collect()
        path = get_historical_features(
            labels,
            training_set.features,
            repository=repository,
            offline_store=offline_store,
            full_feature_names=training_set.full_feature_names,
            timestamp_column=training_set.labels.timestamp_field,
            output_path=offline_store.resolve(training_set.output_path),
        )
        written = pl.scan_parquet(path, storage_options=offline_store.storage_options)
        schema = written.collect_schema()
        feature_columns = schema.names()[labels.width :]
        counts = written.select(pl.len(), *(pl.col(c).null_count() for c in feature_columns)).collect().row(0)
        rows, null_counts = counts[0], counts[1:]
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": dg.MetadataValue.int(rows),
                "path": dg.MetadataValue.path(path),
                "features": dg.MetadataValue.json(references),
                **{
                    f"{column}/null_pct": dg.MetadataValue.float(100.0 * nulls / rows if rows else 0.0)
                    for column, nulls in zip(feature_columns, null_counts, strict=True)
                },
                "dagster/column_schema": dg.TableSchema(
                    columns=[dg.TableColumn(name, str(dtype)) for name, dtype in schema.items()]
                ),
            }
        )

    return _training_set
