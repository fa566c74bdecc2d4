"""Fresh features: rows and events pushed to views as they happen, and the stream worker that applies events."""

from feature_assets.streaming.push import PushResult, push
from feature_assets.streaming.worker import StreamWorker, WorkerTotals

__all__ = ["PushResult", "StreamWorker", "WorkerTotals", "push"]
