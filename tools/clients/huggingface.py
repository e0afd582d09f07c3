"""Hugging Face Hub client: model search and the metadata that sizing needs.

Built on `huggingface_hub` 2.x (sync, httpx2 inside), called through `asyncio.to_thread`.
Around each call: a cache (`HubCache`, default in memory), retries with backoff that honour
`Retry-After` (tenacity, sleeping on the injected clock), and a circuit breaker. When the Hub is
unreachable, or the breaker is open, or the client is `offline`, answers come from the bundled
snapshot and say so (`source="snapshot"`, `snapshot_date`, `note`).

Search issues the same `GET /api/models` request as `HfApi.list_models`, through the library's
session, headers, error parser and `ModelInfo` type, but without `list_models`' own retry loop:
that loop sleeps with `time.sleep` (up to ~23 s on a dead Hub) where our clock cannot see it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar

import httpx2
from huggingface_hub import HfApi
from huggingface_hub import constants as hf_constants
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    OfflineModeIsEnabled,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
)
from huggingface_hub.hf_api import ModelInfo as HubModelInfo
from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from tools.catalog import (
    CHAT_PIPELINES,
    ModelInfo,
    ModelSummary,
    Snapshot,
    build_model_info,
    default_snapshot,
    matches_filters,
    nearest_ids,
)
from tools.clock import Clock
from tools.errors import InvalidInput, NotFound, ProviderError, RateLimited

log = logging.getLogger(__name__)

SERVICE = "huggingface"
DEFAULT_CACHE_TTL_SECONDS = 6 * 3600  # model metadata changes rarely; downloads may lag 6 h
SEARCH_CACHE_TTL_SECONDS = 3600
REQUEST_TIMEOUT_SECONDS = 10.0
MAX_ATTEMPTS = 3  # per call, for 429 / 5xx / network errors
BACKOFF_BASE_SECONDS = 0.5
BACKOFF_MAX_SECONDS = 8.0
MAX_RETRY_AFTER_SECONDS = 30.0  # a longer Retry-After is reported, not waited for
DEFAULT_RETRY_AFTER_SECONDS = 60.0  # told to the user when a 429 carries no hint
BREAKER_FAILURE_THRESHOLD = 5  # consecutive failed requests before the breaker opens
BREAKER_COOLDOWN_SECONDS = 60.0
MAX_SEARCH_LIMIT = 100
SUGGESTION_SEARCH_LIMIT = 20
LIBRARY_NAME = "ai-dev-cockpit"

# `expand` returns only the listed properties, keeping answers small.
MODEL_EXPAND = [
    "author",
    "cardData",
    "downloads",
    "gated",
    "library_name",
    "likes",
    "pipeline_tag",
    "safetensors",
    "sha",
    "tags",
]
SEARCH_EXPAND = ["downloads", "gated", "library_name", "likes", "pipeline_tag", "safetensors"]

_MODEL_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
T = TypeVar("T")


# --- errors ---------------------------------------------------------------------------------


class GatedModelError(ProviderError):
    """The model is gated: it needs an accepted licence and a token with access."""

    def __init__(self, model_id: str, *, status: int | None = None, has_token: bool = False):
        if has_token:
            message = (
                f"{model_id} is gated on Hugging Face and the configured token has no access "
                "to it yet."
            )
        else:
            message = f"{model_id} is gated on Hugging Face and no access token is configured."
        super().__init__(
            message,
            service=SERVICE,
            status=status,
            fix=(
                f"Accept the licence on huggingface.co/{model_id} and add a token with "
                "`/connect huggingface` or HF_TOKEN."
            ),
        )
        self.model_id = model_id


class ModelNotFound(NotFound):
    """No such model; `suggestions` holds the nearest ids (may be empty)."""

    def __init__(self, message: str, *, suggestions: list[str], fix: str | None = None):
        super().__init__(message, fix=fix)
        self.suggestions = suggestions


FailureKind = Literal[
    "unavailable", "open", "rate_limited", "not_found", "gated", "forbidden", "no_entry", "error"
]


class _HubFailure(Exception):
    """A failed Hub call, classified; turned into a `CockpitError` (or a fallback) by callers."""

    def __init__(
        self,
        kind: FailureKind,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        detail: str = "",
    ) -> None:
        super().__init__(f"{kind} {status or ''} {detail}".strip())
        self.kind = kind
        self.status = status
        self.retry_after = retry_after
        self.detail = detail


def _retry_after(response: httpx2.Response | None) -> float | None:
    if response is None:
        return None
    value = response.headers.get("Retry-After")
    if value:
        try:
            return max(float(value), 0.0)
        except ValueError:
            pass  # an HTTP date: rare on the Hub; fall through to the RateLimit header
    ratelimit = response.headers.get("RateLimit") or ""
    match = re.search(r"\bt=(\d+)", ratelimit)
    return float(match.group(1)) if match else None


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _classify(exc: BaseException) -> _HubFailure:
    """Map huggingface_hub / httpx2 errors (including the causes that `hf_hub_download` wraps
    in `LocalEntryNotFoundError`) to a failure kind."""
    for err in _chain(exc):
        if isinstance(err, GatedRepoError):  # before RepositoryNotFoundError: it is a subclass
            return _HubFailure("gated", status=_status(err))
        if isinstance(err, RepositoryNotFoundError):
            return _HubFailure("not_found", status=_status(err))
        if isinstance(err, RemoteEntryNotFoundError):
            return _HubFailure("no_entry", status=_status(err))
        if isinstance(err, HfHubHTTPError):
            status = _status(err)
            response = getattr(err, "response", None)
            if status == 429:
                return _HubFailure("rate_limited", status=429, retry_after=_retry_after(response))
            if status in (401, 403):
                return _HubFailure("forbidden", status=status)
            if status is None or status >= 500 or status == 408:
                return _HubFailure("unavailable", status=status, detail=str(err)[:200])
            return _HubFailure("error", status=status, detail=str(err)[:200])
        if isinstance(err, httpx2.TransportError | OfflineModeIsEnabled | TimeoutError):
            return _HubFailure("unavailable", detail=type(err).__name__)
    if isinstance(exc, LocalEntryNotFoundError | ConnectionError):
        return _HubFailure("unavailable", detail=type(exc).__name__)
    return _HubFailure("error", detail=f"{type(exc).__name__}: {exc}"[:200])


def _status(err: BaseException) -> int | None:
    response = getattr(err, "response", None)
    return getattr(response, "status_code", None)


def _is_retryable(exc: BaseException) -> bool:
    if not isinstance(exc, _HubFailure):
        return False
    if exc.kind == "unavailable":
        return True
    if exc.kind == "rate_limited":
        return exc.retry_after is None or exc.retry_after <= MAX_RETRY_AFTER_SECONDS
    return False


def _wait(state: RetryCallState) -> float:
    exc = state.outcome.exception() if state.outcome else None
    if isinstance(exc, _HubFailure) and exc.retry_after is not None:
        return exc.retry_after
    return min(BACKOFF_MAX_SECONDS, BACKOFF_BASE_SECONDS * 2 ** (state.attempt_number - 1))


# --- cache and breaker ----------------------------------------------------------------------


class HubCache(Protocol):
    """Where Hub answers are kept between calls (the bot uses a database table)."""

    async def get(self, key: str) -> dict[str, Any] | None: ...

    async def put(self, key: str, value: dict[str, Any], ttl_seconds: int) -> None: ...


class MemoryHubCache:
    """In-process `HubCache` with expiry on the given clock. Values are stored as JSON, so a
    caller cannot mutate what is cached and anything stored would also fit a database column."""

    def __init__(self, clock: Clock | None = None) -> None:
        self._clock = clock or Clock()
        self._items: dict[str, tuple[datetime, str]] = {}

    async def get(self, key: str) -> dict[str, Any] | None:
        item = self._items.get(key)
        if item is None:
            return None
        expires, raw = item
        if self._clock.now() >= expires:
            del self._items[key]
            return None
        value: dict[str, Any] = json.loads(raw)
        return value

    async def put(self, key: str, value: dict[str, Any], ttl_seconds: int) -> None:
        expires = self._clock.now() + timedelta(seconds=ttl_seconds)
        self._items[key] = (expires, json.dumps(value, default=str))

    def __len__(self) -> int:
        return len(self._items)


BreakerState = Literal["closed", "open", "half_open"]


class CircuitBreaker:
    """Stops calling the Hub after `failure_threshold` consecutive failed requests.

    Open for `cooldown_seconds` (measured with `clock.monotonic()`); then one trial request may
    pass (half-open): success closes the breaker, failure opens it for another cool-down. Share
    one breaker between the clients of all organisations: they all talk to the same Hub.
    """

    def __init__(
        self,
        clock: Clock,
        *,
        failure_threshold: int = BREAKER_FAILURE_THRESHOLD,
        cooldown_seconds: float = BREAKER_COOLDOWN_SECONDS,
    ) -> None:
        self._clock = clock
        self.failure_threshold = failure_threshold
        self.cooldown_seconds = cooldown_seconds
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_in_flight = False

    @property
    def state(self) -> BreakerState:
        if self._opened_at is None:
            return "closed"
        return "half_open" if self.retry_in() <= 0 else "open"

    @property
    def failures(self) -> int:
        return self._failures

    def retry_in(self) -> float:
        """Seconds until a trial request is allowed (0 when closed or half-open)."""
        if self._opened_at is None:
            return 0.0
        return max(0.0, self._opened_at + self.cooldown_seconds - self._clock.monotonic())

    def allow(self) -> bool:
        """May a request go out now? In half-open state only one trial at a time."""
        if self._opened_at is None:
            return True
        if self.retry_in() > 0 or self._trial_in_flight:
            return False
        self._trial_in_flight = True
        return True

    def record_success(self) -> None:
        self._failures = 0
        self._opened_at = None
        self._trial_in_flight = False

    def record_failure(self) -> None:
        self._failures += 1
        trial_failed = self._trial_in_flight
        self._trial_in_flight = False
        if trial_failed or self._failures >= self.failure_threshold:
            if self._opened_at is None or trial_failed:
                log.warning(
                    "Hugging Face circuit breaker open for %.0f s after %d failures",
                    self.cooldown_seconds,
                    self._failures,
                )
            self._opened_at = self._clock.monotonic()


# --- the client -----------------------------------------------------------------------------


class HubClient:
    """Async access to Hugging Face model metadata for one token (one organisation).

    `endpoint` defaults to HF_ENDPOINT / huggingface.co; `token=None` sends no token (a locally
    saved login is deliberately not used: the bot passes each organisation's token explicitly).
    `offline=True` answers only from the snapshot (the sandbox uses it). `download_dir` is where
    `config.json` files are cached by huggingface_hub (default: its usual cache).
    """

    def __init__(
        self,
        *,
        endpoint: str | None = None,
        token: str | None = None,
        clock: Clock | None = None,
        cache: HubCache | None = None,
        snapshot: Snapshot | None = None,
        breaker: CircuitBreaker | None = None,
        offline: bool = False,
        download_dir: str | Path | None = None,
        timeout: float = REQUEST_TIMEOUT_SECONDS,
        cache_ttl_seconds: int = DEFAULT_CACHE_TTL_SECONDS,
        max_attempts: int = MAX_ATTEMPTS,
    ) -> None:
        self._clock = clock or Clock()
        self._endpoint = (endpoint or hf_constants.ENDPOINT).rstrip("/")
        self._token = token or None
        self._cache: HubCache = cache if cache is not None else MemoryHubCache(self._clock)
        self._snapshot = snapshot or default_snapshot()
        self.breaker = breaker or CircuitBreaker(self._clock)
        self.offline = offline
        self._download_dir = str(download_dir) if download_dir is not None else None
        self._timeout = timeout
        self._ttl = cache_ttl_seconds
        self._max_attempts = max(1, max_attempts)
        # token=False: never fall back to a token saved on this machine.
        self._api = HfApi(endpoint=self._endpoint, token=self._token or False)

    @property
    def endpoint(self) -> str:
        return self._endpoint

    @property
    def has_token(self) -> bool:
        return self._token is not None

    @property
    def snapshot(self) -> Snapshot:
        return self._snapshot

    # -- public API ------------------------------------------------------------------------

    async def search_models(
        self,
        query: str | None = None,
        *,
        limit: int = 10,
        gated: bool | None = None,
        min_params: float | None = None,
        max_params: float | None = None,
        library: str | None = None,
    ) -> list[ModelSummary]:
        """Chat models (text-generation and image-text-to-text) whose id contains `query`, most
        downloaded first.

        `min_params` / `max_params` are in billions; `gated` keeps only gated (True) or open
        (False) models; `library` filters by library ("transformers"). Falls back to the
        snapshot (labelled) when the Hub cannot answer; raises `RateLimited` on a lasting 429.
        """
        _check_search_args(limit, min_params, max_params)
        q = (query or "").strip() or None
        filters: dict[str, Any] = {
            "gated": gated,
            "min_params": min_params,
            "max_params": max_params,
            "library": library,
        }
        if self.offline:
            return self._snapshot.search(q, limit=limit, **filters)
        key = "hf:search:" + json.dumps([q, limit, gated, min_params, max_params, library])
        cached = await self._cache.get(key)
        if cached is not None:
            return [ModelSummary.model_validate(item) for item in cached["items"]]
        try:
            items = await self._search_hub(q, limit=limit, **filters)
        except _HubFailure as failure:
            if failure.kind in ("unavailable", "open"):
                log.info("Hugging Face unavailable (%s); searching the snapshot", failure)
                return self._snapshot.search(q, limit=limit, **filters)
            raise self._error(failure, what="search") from failure
        payload = {"items": [item.model_dump(mode="json") for item in items]}
        await self._cache.put(key, payload, SEARCH_CACHE_TTL_SECONDS)
        return items

    async def model_info(self, model_id: str, *, check_access: bool = True) -> ModelInfo:
        """Metadata, parameter counts and config.json geometry of one model.

        Raises `GatedModelError` for a gated model without a token (or with a token that has no
        access) unless `check_access=False`, in which case geometry comes from the snapshot when
        it has the model; `ModelNotFound` (with nearest ids) for an unknown id; `RateLimited`
        after retries on 429; `ProviderError` when the Hub is down and the snapshot lacks the
        model. When the Hub is down or the breaker is open, answers from the snapshot.
        """
        model_id = _check_model_id(model_id)
        if self.offline:
            return self._from_snapshot(model_id, "offline mode", check_access=check_access)
        key = f"hf:model:{model_id}"
        cached = await self._cache.get(key)
        if cached is not None:
            info = ModelInfo.model_validate(cached)
            self._ensure_access(info, check_access)
            return info
        try:
            info = await self._fetch_model_info(model_id, check_access=check_access)
        except _HubFailure as failure:
            if failure.kind in ("unavailable", "open"):
                return self._fallback(model_id, failure, check_access=check_access)
            if failure.kind == "not_found":
                raise await self._not_found(model_id) from failure
            if failure.kind in ("gated", "forbidden"):
                raise GatedModelError(
                    model_id, status=failure.status, has_token=self.has_token
                ) from failure
            raise self._error(failure, what=model_id) from failure
        if info.source == "hub":
            await self._cache.put(key, info.model_dump(mode="json"), self._ttl)
        return info

    # -- Hub calls -------------------------------------------------------------------------

    async def _call(self, fn: Callable[[], T]) -> T:
        """Run one blocking huggingface_hub call with the breaker, retries and backoff."""
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._max_attempts),
            wait=_wait,
            # no point waiting to retry once the breaker has opened
            retry=retry_if_exception(lambda e: _is_retryable(e) and self.breaker.state != "open"),
            sleep=self._clock.sleep,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await self._attempt(fn)
        raise AssertionError("unreachable: tenacity re-raises the last failure")

    async def _attempt(self, fn: Callable[[], T]) -> T:
        if not self.breaker.allow():
            raise _HubFailure("open", detail=f"breaker open for {self.breaker.retry_in():.0f} s")
        try:
            result = await asyncio.to_thread(fn)
        except Exception as exc:
            failure = _classify(exc)
            if failure.kind == "unavailable":
                self.breaker.record_failure()
            else:  # the Hub answered, even if with an error
                self.breaker.record_success()
            log.debug("Hugging Face call failed: %s", failure)
            raise failure from exc
        self.breaker.record_success()
        return result

    def _headers(self) -> dict[str, str]:
        return build_hf_headers(token=self._token or False, library_name=LIBRARY_NAME)

    async def _search_hub(
        self,
        query: str | None,
        *,
        limit: int,
        gated: bool | None,
        min_params: float | None,
        max_params: float | None,
        library: str | None,
    ) -> list[ModelSummary]:
        base: dict[str, Any] = {"sort": "downloads", "limit": limit, "expand": SEARCH_EXPAND}
        if query:
            base["search"] = query
        if gated is not None:
            base["gated"] = gated
        if library:
            base["filter"] = library
        size = _num_parameters(min_params, max_params)
        if size:
            base["num_parameters"] = size
        url = f"{self._endpoint}/api/models"

        def request(pipeline: str) -> list[HubModelInfo]:
            response = get_session().get(
                url,
                params={**base, "pipeline_tag": pipeline},
                headers=self._headers(),
                timeout=self._timeout,
            )
            hf_raise_for_status(response)
            return [HubModelInfo(**item) for item in response.json()]

        # The Hub filters one pipeline per request; chat models vLLM serves are tagged
        # text-generation or (multimodal: Gemma 3, Llama 4, Mistral Small 3.1+)
        # image-text-to-text.
        hits: dict[str, ModelSummary] = {}
        for pipeline in CHAT_PIPELINES:
            for item in await self._call(lambda p=pipeline: request(p)):  # type: ignore[misc]
                summary = _summary(item)
                if summary.pipeline_tag not in (None, *CHAT_PIPELINES):
                    continue
                if library and summary.library and summary.library != library:
                    continue
                if matches_filters(
                    summary, gated=gated, min_params=min_params, max_params=max_params
                ):
                    hits.setdefault(summary.id, summary)
        ranked = sorted(hits.values(), key=lambda s: s.downloads, reverse=True)
        return ranked[:limit]

    async def _fetch_model_info(self, model_id: str, *, check_access: bool) -> ModelInfo:
        hub = await self._call(
            lambda: self._api.model_info(model_id, expand=MODEL_EXPAND, timeout=self._timeout)  # type: ignore[arg-type]
        )
        gated = hub.gated or False
        if gated and not self.has_token:
            if not check_access:
                snap = self._snapshot.get(
                    model_id, note="config.json is gated; geometry from the snapshot"
                )
                if snap is not None:
                    return snap
            raise GatedModelError(model_id, has_token=False)
        try:
            config: dict[str, Any] | None = await self._call(lambda: self._read_config(model_id))
        except _HubFailure as failure:
            if failure.kind in ("gated", "forbidden") or (failure.kind == "not_found" and gated):
                raise GatedModelError(
                    model_id, status=failure.status, has_token=self.has_token
                ) from failure
            if failure.kind != "no_entry":
                raise
            config = None  # e.g. a GGUF-only repo: no geometry, sizing will say so
        safetensors = hub.safetensors
        card = hub.card_data
        license_ = getattr(card, "license", None) if card is not None else None
        if license_ is None:
            license_ = next(
                (t.split(":", 1)[1] for t in hub.tags or [] if t.startswith("license:")), None
            )
        return build_model_info(
            model_id=hub.id or model_id,
            config=config,
            params_by_dtype=dict(safetensors.parameters) if safetensors else None,
            params_total=safetensors.total if safetensors else None,
            license=license_ if isinstance(license_, str) else None,
            gated=gated,
            downloads=hub.downloads,
            likes=hub.likes,
            library=hub.library_name,
            pipeline_tag=hub.pipeline_tag,
            sha=hub.sha,
            source="hub",
        )

    def _read_config(self, model_id: str) -> dict[str, Any]:
        path = self._api.hf_hub_download(
            model_id,
            "config.json",
            cache_dir=self._download_dir,
            etag_timeout=self._timeout,
        )
        data: dict[str, Any] = json.loads(Path(str(path)).read_text(encoding="utf-8"))
        return data

    # -- fallbacks and errors --------------------------------------------------------------

    def _ensure_access(self, info: ModelInfo, check_access: bool) -> None:
        if check_access and info.gated and not self.has_token:
            raise GatedModelError(info.id, has_token=False)

    def _from_snapshot(self, model_id: str, note: str, *, check_access: bool) -> ModelInfo:
        info = self._snapshot.get(model_id, note=note)
        if info is None:
            suggestions = self._snapshot.nearest(model_id)
            raise ModelNotFound(
                f"{model_id} is not in the bundled model catalog "
                f"(compiled {self._snapshot.snapshot_date}), and {note} means Hugging Face is "
                "not asked.",
                suggestions=suggestions,
                fix=_did_you_mean(suggestions),
            )
        self._ensure_access(info, check_access)
        return info

    def _fallback(self, model_id: str, failure: _HubFailure, *, check_access: bool) -> ModelInfo:
        note = (
            "Hugging Face paused after repeated failures"
            if failure.kind == "open"
            else "Hugging Face unreachable"
        )
        info = self._snapshot.get(model_id, note=note)
        if info is None:
            raise ProviderError(
                f"{note}, and {model_id} is not in the bundled model catalog "
                f"(compiled {self._snapshot.snapshot_date}).",
                service=SERVICE,
                status=failure.status,
                retryable=True,
                fix=_retry_fix(self.breaker.retry_in() or BACKOFF_MAX_SECONDS),
            ) from failure
        log.info("Answering %s from the snapshot: %s", model_id, note)
        self._ensure_access(info, check_access)
        return info

    async def _not_found(self, model_id: str) -> ModelNotFound:
        extra: list[str] = []
        term = _search_term(model_id)
        if term:
            try:
                hits = await self._search_hub(
                    term,
                    limit=SUGGESTION_SEARCH_LIMIT,
                    gated=None,
                    min_params=None,
                    max_params=None,
                    library=None,
                )
                extra = [h.id for h in hits]
            except _HubFailure:
                pass  # suggestions are a courtesy; the snapshot still offers some
        suggestions = nearest_ids(model_id, [*self._snapshot.ids(), *extra])
        return ModelNotFound(
            f"Hugging Face has no model '{model_id}'.",
            suggestions=suggestions,
            fix=_did_you_mean(suggestions),
        )

    def _error(self, failure: _HubFailure, *, what: str) -> Exception:
        if failure.kind == "rate_limited":
            wait = failure.retry_after or DEFAULT_RETRY_AFTER_SECONDS
            hint = (
                ""
                if self.has_token
                else " A token (`/connect huggingface` or HF_TOKEN) raises the limit."
            )
            return RateLimited(
                "Hugging Face is rate-limiting our requests (429).",
                retry_after=wait,
                fix=f"Try again in {wait:.0f} s.{hint}",
            )
        if failure.kind in ("gated", "forbidden"):
            return ProviderError(
                f"Hugging Face refused the request for {what} ({failure.status}).",
                service=SERVICE,
                status=failure.status,
                fix="Check the token with `/connect huggingface` or HF_TOKEN.",
            )
        return ProviderError(
            f"Hugging Face could not answer for {what} ({failure.status or failure.detail}).",
            service=SERVICE,
            status=failure.status,
            retryable=failure.kind in ("unavailable", "open"),
        )


# --- helpers ------------------------------------------------------------------------------


def _check_model_id(model_id: str) -> str:
    cleaned = (model_id or "").strip().strip("/")
    if cleaned.startswith(("https://huggingface.co/", "http://huggingface.co/")):
        cleaned = cleaned.split("huggingface.co/", 1)[1].strip("/")
    if not _MODEL_ID.match(cleaned):
        raise InvalidInput(
            f"'{model_id}' is not a Hugging Face model id.",
            fix="Use the form org/name, e.g. Qwen/Qwen2.5-7B-Instruct.",
        )
    return cleaned


def _check_search_args(limit: int, min_params: float | None, max_params: float | None) -> None:
    if not 1 <= limit <= MAX_SEARCH_LIMIT:
        raise InvalidInput(f"limit must be between 1 and {MAX_SEARCH_LIMIT} (got {limit}).")
    for value in (min_params, max_params):
        if value is not None and value < 0:
            raise InvalidInput("Parameter sizes are in billions and cannot be negative.")
    if min_params is not None and max_params is not None and min_params > max_params:
        raise InvalidInput(f"min_params ({min_params}B) is larger than max_params ({max_params}B).")


def _billions(value: float) -> str:
    """Hub size syntax: 7 → "7B", 0.5 → "500M"."""
    if float(value).is_integer():
        return f"{int(value)}B"
    return f"{round(value * 1000)}M"


def _num_parameters(min_params: float | None, max_params: float | None) -> str | None:
    parts = []
    if min_params is not None:
        parts.append(f"min:{_billions(min_params)}")
    if max_params is not None:
        parts.append(f"max:{_billions(max_params)}")
    return ",".join(parts) or None


def _summary(item: HubModelInfo) -> ModelSummary:
    safetensors = item.safetensors
    return ModelSummary(
        id=item.id,
        downloads=item.downloads or 0,
        likes=item.likes or 0,
        gated=bool(item.gated),
        params=safetensors.total if safetensors else None,
        library=item.library_name,
        pipeline_tag=item.pipeline_tag,
        source="hub",
    )


def _search_term(model_id: str) -> str:
    """A search likely to contain the intended model: the first part of the repo name
    ("Qwen2.5" for "Qwen/Qwen2.5-7B-Instrct")."""
    name = model_id.split("/", 1)[-1]
    head = re.split(r"[-_ ]", name, maxsplit=1)[0]
    return head if len(head) >= 3 else name


def _did_you_mean(suggestions: list[str]) -> str:
    if suggestions:
        return "Did you mean " + ", ".join(suggestions) + "?"
    return "Check the spelling; ids look like org/name, e.g. Qwen/Qwen2.5-7B-Instruct."


def _retry_fix(seconds: float) -> str:
    return f"Try again in about {max(seconds, 1):.0f} s, or pick a model from the bundled catalog."


__all__ = [
    "BREAKER_COOLDOWN_SECONDS",
    "BREAKER_FAILURE_THRESHOLD",
    "DEFAULT_CACHE_TTL_SECONDS",
    "MAX_ATTEMPTS",
    "CircuitBreaker",
    "GatedModelError",
    "HubCache",
    "HubClient",
    "MemoryHubCache",
    "ModelNotFound",
]
