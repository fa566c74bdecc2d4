"""Training sets of the demo domain: trip outcomes joined point-in-time with the ranking model's features."""

from feature_assets import ParquetSource
from feature_assets.demo.views import trip_ranking
from feature_assets.language.training_set import TrainingSet

trip_outcomes = ParquetSource(
    name="trip_outcomes",
    path="raw/trip_outcomes/*.parquet",
    timestamp_field="requested_at",
    description="Every trip request of the demo's days with whether it was completed: the ranking model's label",
)

trip_completion = TrainingSet(
    "trip_completion",
    features=trip_ranking,
    labels=trip_outcomes,
    description="Trip requests labelled with completion, with the trip_ranking features as of each request",
)
