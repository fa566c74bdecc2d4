"""The demo project's feature repository: ride-hailing drivers, customers and trips."""

from feature_assets import FeatureRepository, FeatureService
from feature_assets.demo.views.customers import customer_profile
from feature_assets.demo.views.drivers import driver_activity_live, driver_profile, driver_trip_stats
from feature_assets.demo.views.trip_pricing import trip_pricing

trip_ranking = FeatureService(
    "trip_ranking",
    features=[
        "driver_profile:rating",
        "driver_profile:acceptance_rate",
        "driver_trip_stats:trips_1d",
        "driver_trip_stats:fare_mean_7d",
        "customer_profile:avg_spend_per_trip",
        "customer_profile:is_premium",
        "trip_pricing:fare_per_km",
        "trip_pricing:fare_vs_driver_mean",
    ],
    description="Features of the model that ranks drivers for a trip request",
    owner="team:marketplace",
)

repository = FeatureRepository(
    views=[driver_profile, driver_trip_stats, driver_activity_live, customer_profile],
    services=[trip_ranking],
    on_demand_views=[trip_pricing],
)
