"""The demo domain's entities: drivers and customers of a ride-hailing service."""

from feature_assets import Entity

driver = Entity("driver", join_keys=["driver_id"], description="A driver on the platform")
customer = Entity("customer", join_keys=["customer_id"], description="A rider who requests trips")
