"""Slack transport details: the Web API client (base URL, retries that honour Retry-After) and
request-signature checks, both on the cockpit's injectable clock so tests control time."""

from __future__ import annotations

import contextlib
import random
from typing import Any

from slack_bolt.middleware.request_verification.async_request_verification import (
    AsyncRequestVerification,
)
from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.signature import Clock as SlackClock
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from tools.clock import Clock

DEFAULT_SLACK_API_URL = "https://slack.com/api/"
RATE_LIMIT_RETRIES = 3
DEFAULT_RETRY_AFTER_SECONDS = 1.0
API_TIMEOUT_SECONDS = 30


def normalise_api_url(url: str | None) -> str:
    """slack-sdk joins method names onto the base URL, so it must end with a slash."""
    url = url or DEFAULT_SLACK_API_URL
    return url if url.endswith("/") else url + "/"


class ClockedRateLimitRetryHandler(AsyncRateLimitErrorRetryHandler):
    """slack-sdk's 429 handler (waits Retry-After plus jitter, then retries), waiting on the
    cockpit clock instead of `asyncio.sleep` so a fake clock skips the wait in tests."""

    def __init__(self, clock: Clock, *, max_retry_count: int = RATE_LIMIT_RETRIES) -> None:
        super().__init__(max_retry_count=max_retry_count)
        self._clock = clock

    async def prepare_for_next_attempt_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> None:
        if response is None:
            raise error or RuntimeError("rate-limit retry without a response")
        state.next_attempt_requested = True
        wait = DEFAULT_RETRY_AFTER_SECONDS
        for name, values in response.headers.items():
            if name.lower() == "retry-after" and values:
                with contextlib.suppress(ValueError):
                    wait = float(values[0])
        await self._clock.sleep(wait + random.random())
        state.increment_current_attempt()


def retry_handlers(clock: Clock) -> list[AsyncRetryHandler]:
    return [AsyncConnectionErrorRetryHandler(), ClockedRateLimitRetryHandler(clock)]


def new_client(*, token: str | None, api_url: str | None, clock: Clock) -> AsyncWebClient:
    """An AsyncWebClient aimed at `api_url` (a fake in tests) that retries 429s and dropped
    connections."""
    return AsyncWebClient(
        token=token,
        base_url=normalise_api_url(api_url),
        timeout=API_TIMEOUT_SECONDS,
        retry_handlers=retry_handlers(clock),
    )


class _SlackClockAdapter(SlackClock):
    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    def now(self) -> float:
        return self._clock.now().timestamp()


def clocked_verifier(signing_secret: str, clock: Clock) -> SignatureVerifier:
    """slack-sdk's v0 signature verifier with its replay window on the cockpit clock."""
    return SignatureVerifier(signing_secret, clock=_SlackClockAdapter(clock))


class ClockedRequestVerification(AsyncRequestVerification):
    """Bolt's signature check (v0 HMAC-SHA256, 5-minute replay window, 401 otherwise) with the
    window measured on the cockpit clock."""

    def __init__(self, signing_secret: str, clock: Clock, **kwargs: Any) -> None:
        super().__init__(signing_secret, **kwargs)
        self._verifier = clocked_verifier(signing_secret, clock)
