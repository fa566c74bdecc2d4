"""Training sets: label rows joined point-in-time with features, materialized as a Parquet Dagster asset."""

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import dagster as dg
import polars as pl

from feature_assets.asset_keys import view_asset_key
from feature_assets.errors import DefinitionError
from feature_assets.feature_service import FeatureReference, FeatureService
from feature_assets.names import validate_name
from feature_assets.point_in_time import get_historical_features
from feature_assets.repository import FeatureRepository
from feature_assets.sources import ParquetSource
from resources.offline_store import OfflineStore


@dataclass(frozen=True)
class TrainingSet:
    """Labelled entity rows (keys, timestamp, labels) to be joined point-in-time with a list of features."""

    name: str
    features: tuple[str, ...] | FeatureService
    labels: ParquetSource
    description: str = ""
    full_feature_names: bool = False

    def __init__(
        self,
        name: str,
        features: Sequence[str] | FeatureService,
        labels: ParquetSource,
        description: str = "",
        full_feature_names: bool = False,
    ) -> None:
        validate_name(name, "TrainingSet")
        if not isinstance(labels, ParquetSource):
            raise DefinitionError(
                f"TrainingSet {name!r}: labels must be a ParquetSource holding the entity keys, "
                f"the entity timestamp (its timestamp_field) and the label columns; got {type(labels).__name__}"
            )
        if not isinstance(features, FeatureService):
            if isinstance(features, str) or not features:
                raise DefinitionError(
                    f"TrainingSet {name!r}: features must be a non-empty list of 'view:feature' or a FeatureService"
                )
            features = tuple(str(FeatureReference.parse(f)) for f in features)
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "features", features)
        object.__setattr__(self, "labels", labels)
        object.__setattr__(self, "description", description)
        object.__setattr__(self, "full_feature_names", full_feature_names)

    @property
    def asset_key(self) -> dg.AssetKey:
        """Return the key of the training set's asset."""
        return dg.AssetKey(["training", self.name])

    @property
    def output_path(self) -> str:
        """Return where the training set is written, relative to the offline store's root."""
        return f"training/{self.name}/data.parquet"


def build_training_set_asset(training_set: TrainingSet, repository: FeatureRepository) -> dg.AssetsDefinition:
    """Return the asset that joins the training set's labels with its features and writes one Parquet file."""
    resolved = repository.resolve(training_set.features)
    references = [f"{view.name}:{feature}" for view in resolved.views for feature in resolved.features[view.name]]
    code_version = hashlib.sha256(
        "\n".join(
            [
                training_set.name,
                repr(training_set.labels),
                str(training_set.full_feature_names),
                *references,
                *(view.code_version for view in resolved.views),
            ]
        ).encode()
    ).hexdigest()[:16]
    description = training_set.description or (
        f"Rows of {training_set.labels.name!r} joined point-in-time with {len(references)} features."
    )

    @dg.asset(
        key=training_set.asset_key,
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
        frame = get_historical_features(
            labels,
            training_set.features,
            repository=repository,
            offline_store=offline_store,
            full_feature_names=training_set.full_feature_names,
            timestamp_column=training_set.labels.timestamp_field,
        )
        path = offline_store.write_file(training_set.output_path, frame)
        feature_columns = frame.columns[labels.width :]
        rows = frame.height
        null_counts = frame.select(feature_columns).null_count().row(0)
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
                    columns=[dg.TableColumn(name, str(dtype)) for name, dtype in frame.schema.items()]
                ),
            }
        )

    return _training_set
