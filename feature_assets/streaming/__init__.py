"""Fresh features: rows pushed to views as they happen."""

from feature_assets.streaming.push import PushResult, push

__all__ = ["PushResult", "push"]
