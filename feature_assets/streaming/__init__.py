"""Fresh features: rows and events pushed to views as they happen (processes: streaming.worker, .archiver)."""

from feature_assets.streaming.push import PushResult, push, push_to_source

__all__ = ["PushResult", "push", "push_to_source"]
