"""Training sets: labelled entity rows to be joined point-in-time with a list of features."""

from collections.abc import Sequence
from dataclasses import dataclass

from feature_assets.language.errors import DefinitionError
from feature_assets.language.feature_service import FeatureReference, FeatureService
from feature_assets.language.names import validate_name
from feature_assets.language.sources import ParquetSource


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
    def output_path(self) -> str:
        """Return where the training set is written, relative to the offline store's root."""
        return f"training/{self.name}/data.parquet"
