"""The alert webhook: quality alerts POSTed as JSON to an HTTP endpoint, retried with backoff, never raising."""

import http.client
import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from urllib.parse import urlsplit

from dagster import ConfigurableResource, EnvVar
from pydantic import Field, PrivateAttr

URL_VARIABLE = "ALERT_WEBHOOK_URL"


class _RefuseRedirects(urllib.request.HTTPRedirectHandler):
    """Turn every redirect into an HTTPError, so a 3xx answer counts as a failed delivery instead of a GET."""

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


_OPENER = urllib.request.build_opener(_RefuseRedirects)


class AlertWebhook(ConfigurableResource):
    """An HTTP endpoint receiving each quality alert as a JSON POST; without a url, alerts only go to the log."""

    url: str | None = Field(
        default=None, description="http(s) URL receiving each alert as a JSON POST; unset: alerts are only logged."
    )
    timeout_seconds: float = Field(default=5.0, description="Seconds to wait for the endpoint on each attempt.")
    attempts: int = Field(default=3, description="Attempts per alert before it is left queued for the next tick.")
    backoff_seconds: float = Field(default=0.5, description="Wait before the second attempt, doubled before each next.")

    _last_error: str | None = PrivateAttr(default=None)

    @classmethod
    def from_env(cls, *, as_env_vars: bool = False) -> "AlertWebhook":
        """Build the webhook from ALERT_WEBHOOK_URL (unset: log only).

        With `as_env_vars` the URL is a Dagster `EnvVar`, resolved when the sensor runs (for Definitions);
        otherwise it is read now (for plain Python).
        """
        if not os.environ.get(URL_VARIABLE):
            return cls()
        return cls(url=EnvVar(URL_VARIABLE) if as_env_vars else os.environ[URL_VARIABLE])

    @property
    def last_error(self) -> str | None:
        """Return why the latest failed delivery failed (None after a success)."""
        return self._last_error

    def deliver(self, alert: Mapping[str, object]) -> bool:
        """POST `alert` as JSON, retrying failures; return whether the endpoint accepted it (True without a url)."""
        url = self.url.get_value() if isinstance(self.url, EnvVar) else self.url
        self._last_error = None
        if not url:
            return True
        if urlsplit(url).scheme not in ("http", "https"):
            self._last_error = f"alert webhook URL {url!r} is not http(s); set {URL_VARIABLE} to an http(s) URL"
            return False
        body = json.dumps(alert, sort_keys=True).encode()
        for attempt in range(max(self.attempts, 1)):
            if attempt:
                time.sleep(self.backoff_seconds * 2 ** (attempt - 1))
            request = urllib.request.Request(
                url, data=body, method="POST", headers={"Content-Type": "application/json"}
            )
            try:
                with _OPENER.open(request, timeout=self.timeout_seconds) as response:
                    response.read()
                    if 200 <= response.status < 300:
                        self._last_error = None
                        return True
                    self._last_error = f"HTTP {response.status} from {url}"
            except urllib.error.HTTPError as error:
                self._last_error = f"HTTP {error.code} from {url}"
            except (OSError, ValueError, http.client.HTTPException) as error:
                self._last_error = f"{type(error).__name__} posting to {url}: {error}"
        self._last_error = f"{self._last_error} (after {max(self.attempts, 1)} attempts)"
        return False
