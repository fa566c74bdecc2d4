"""The demo project: a ride-hailing domain's views, its seeded data generator and its main job."""
