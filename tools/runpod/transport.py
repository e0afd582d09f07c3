"""The RunPod transport: the shared connection pool, retries, error wording and parsing that
every RunPod call goes through (`RunPodConnection`); the planes in `control` and `serverless`
build on it. Retry and error policy: see `tools.runpod.client`."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import random
import ssl
import time
import weakref
from collections.abc import AsyncIterator, Callable, Hashable, Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from email.utils import parsedate_to_datetime
from enum import Enum
from functools import cache
from typing import Any, Self, TypeVar, cast
from urllib.parse import urlsplit

import httpx
from pydantic import SecretStr, ValidationError

from tools.clock import Clock
from tools.errors import CockpitError, ProviderError, RateLimited
from tools.metrics import OUTSIDE_API_SECONDS
from tools.runpod.models import ModelT

log = logging.getLogger(__name__)
T = TypeVar("T")

SERVICE = "runpod"
DEFAULT_API_URL = "https://api.runpod.io/v2"
DEFAULT_SERVERLESS_URL = "https://api.runpod.ai/v2"
# A pod's HTTP port through RunPod's proxy. vLLM's OpenAI server in our pods listens on 8000.
DEFAULT_POD_PROXY_URL = "https://{pod_id}-{port}.proxy.runpod.net"
POD_OPENAI_PORT = 8000
DEFAULT_TIMEOUT = 30.0
DEFAULT_MAX_RETRIES = 4
DEFAULT_POOL_CONNECTIONS = 100
SHARD_CONNECTIONS = 10  # connections per httpcore pool inside one shared pool
BACKOFF_BASE = 0.5
BACKOFF_CAP = 30.0
RETRY_AFTER_LIMIT = 60.0
# A cold serverless worker (image pull + model load) can take minutes before the first byte.
COLD_START_READ_TIMEOUT = 600.0
USER_AGENT = "ai-dev-cockpit/0.1 (runpod-client)"
DETAIL_LIMIT = 300

KEY_FIX = "Set a new one with `/connect runpod` or the RUNPOD_API_KEY environment variable."
STATUS_PAGE = "https://uptime.runpod.io"


class Retry(Enum):
    SAFE = "safe"  # reads, PATCH, DELETE, cancel, chat: retry 429 / 5xx / transport errors
    CREATE = "create"  # POST create: after a 5xx or ambiguous failure, look up by name first
    SUBMIT = "submit"  # job submission: retry only when the request surely did not run


class MaybeCreated(Exception):
    """A create failed in a way that may still have created the resource."""

    def __init__(self, error: ProviderError) -> None:
        super().__init__(str(error))
        self.error = error


def _landed(flights: dict[Hashable, asyncio.Future[Any]], key: Hashable, flight: Any) -> None:
    if flights.get(key) is flight:
        del flights[key]
    if not flight.cancelled():
        flight.exception()  # retrieved: every caller may have gone


# Transport errors raised before the request could reach the server.
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


@cache
def tls_context() -> ssl.SSLContext:
    """httpx's default verified TLS context (certifi CA bundle), built once per process."""
    return httpx.create_ssl_context()


class TrackedStream(httpx.AsyncByteStream):
    """A response body that reports when it is closed (the request no longer holds a slot)."""

    def __init__(self, stream: httpx.AsyncByteStream, release: Callable[[], None]) -> None:
        self._stream = stream
        self._release: Callable[[], None] | None = release

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._stream:
            yield chunk

    async def aclose(self) -> None:
        if self._release is not None:
            self._release()
            self._release = None
        await self._stream.aclose()


class ShardedTransport(httpx.AsyncBaseTransport):
    """One logical connection pool made of several small httpcore pools.

    httpcore 1.0's pool spends O(connections²) CPU on every request event (its
    `_assign_requests_to_connections`; encode/httpcore#1035, encode/httpx#3215). With 100
    connections a 1,000-endpoint health sweep cost ~13 ms of CPU per request and took 16 s
    instead of ~1 s. Splitting the same connection budget into pools of `shard_size` and
    sending each request to the least busy one keeps the total limit and keep-alive reuse at
    about 1 ms of CPU per request.
    """

    def __init__(self, *, max_connections: int, shard_size: int = SHARD_CONNECTIONS) -> None:
        count = max(1, -(-max_connections // shard_size))
        per_shard = max(1, -(-max_connections // count))
        limits = httpx.Limits(max_connections=per_shard, max_keepalive_connections=per_shard)
        tls = tls_context()  # one CA bundle load (~20 ms of CPU) shared by every shard
        self._shards = [httpx.AsyncHTTPTransport(limits=limits, verify=tls) for _ in range(count)]
        self._busy = [0] * count

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        index = min(range(len(self._shards)), key=self._busy.__getitem__)
        self._busy[index] += 1
        try:
            response = await self._shards[index].handle_async_request(request)
        except BaseException:
            self._busy[index] -= 1
            raise
        assert isinstance(response.stream, httpx.AsyncByteStream)
        response.stream = TrackedStream(response.stream, lambda: self._release(index))
        return response

    def _release(self, index: int) -> None:
        self._busy[index] -= 1

    @property
    def in_flight(self) -> tuple[int, ...]:
        """Requests holding a connection, per shard (a response holds it until closed)."""
        return tuple(self._busy)

    async def aclose(self) -> None:
        for shard in self._shards:
            await shard.aclose()


def make_http_pool(
    *, max_connections: int = DEFAULT_POOL_CONNECTIONS, timeout: float = DEFAULT_TIMEOUT
) -> httpx.AsyncClient:
    """A connection pool to share between RunPod clients (one per organisation key), sized
    for the health sweep: `max_connections` in total (see ShardedTransport for the layout)."""
    transport = ShardedTransport(max_connections=max_connections)
    return httpx.AsyncClient(
        transport=transport, timeout=timeout, headers={"User-Agent": USER_AGENT}
    )


def rfc3339(value: datetime) -> str:
    aware = value if value.tzinfo else value.replace(tzinfo=UTC)
    return aware.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def retry_after(response: httpx.Response, now: datetime) -> float | None:
    """Seconds to wait from a `Retry-After` header (delta-seconds or an HTTP date)."""
    raw = response.headers.get("Retry-After")
    if not raw:
        return None
    try:
        return max(float(raw), 0.0)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max((when - now).total_seconds(), 0.0)


def problem_details(response: httpx.Response) -> tuple[str, str, list[str]]:
    """(title, detail, errors) from an RFC 9457 problem, `{"error": ...}` or plain text."""
    title = response.reason_phrase or ""
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip()
        html = "html" in response.headers.get("content-type", "") or text.startswith("<")
        return title, "" if html else text[:DETAIL_LIMIT], []
    if not isinstance(body, dict):
        return title, "", []
    error = body.get("error")
    if isinstance(error, dict):
        error = error.get("message")
    detail = body.get("detail") or error or body.get("message") or ""
    errors = [str(e) for e in body.get("errors") or [] if e]
    return str(body.get("title") or title), str(detail)[:DETAIL_LIMIT], errors


def named(items: Iterable[ModelT], prefix: str | None) -> list[ModelT]:
    if prefix is None:
        return list(items)
    return [i for i in items if str(getattr(i, "name", "")).startswith(prefix)]


async def sse_data(response: httpx.Response) -> AsyncIterator[str]:
    """The `data` payload of each server-sent event, yielded as soon as the event ends."""
    data: list[str] = []
    async for line in response.aiter_lines():
        if not line:
            if data:
                yield "\n".join(data)
                data = []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        if name == "data":
            data.append(value.removeprefix(" "))
    if data:
        yield "\n".join(data)


def outcome_label(status: int) -> str:
    return "ok" if status < 400 else "rate_limited" if status == 429 else f"{status // 100}xx"


# In-flight coalesced reads, per shared connection pool: (url, account, path, params) -> the
# one request.
_FLIGHTS: weakref.WeakKeyDictionary[httpx.AsyncClient, dict[Hashable, asyncio.Future[Any]]] = (
    weakref.WeakKeyDictionary()
)


class RunPodConnection:
    """One API key's connection to RunPod: headers, retries, error wording, parsing."""

    def __init__(
        self,
        *,
        api_key: str,
        api_url: str = DEFAULT_API_URL,
        serverless_url: str = DEFAULT_SERVERLESS_URL,
        pod_proxy_url: str = DEFAULT_POD_PROXY_URL,
        http: httpx.AsyncClient | None = None,
        clock: Clock | None = None,
        max_retries: int = DEFAULT_MAX_RETRIES,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        if not api_key or not api_key.strip():
            raise ProviderError("No RunPod API key is set.", service=SERVICE, fix=KEY_FIX)
        self._key = SecretStr(api_key.strip())
        self.api_url = api_url.rstrip("/")
        self.serverless_url = serverless_url.rstrip("/")
        self.pod_proxy_url = pod_proxy_url.rstrip("/")
        self._own_http = http is None
        self._http = http if http is not None else make_http_pool(timeout=timeout)
        self._clock = clock or Clock()
        self._max_retries = max(max_retries, 0)
        self._timeout = httpx.Timeout(timeout)
        self._slow_timeout = httpx.Timeout(timeout, read=max(timeout, COLD_START_READ_TIMEOUT))
        self._rng = random.Random()

    async def _coalesced(
        self,
        path: str,
        parse: Callable[[Any], T],
        *,
        action: str,
        params: Mapping[str, str] | None = None,
    ) -> T:
        """`GET path` and `parse` its answer, once for concurrent identical reads (same path and
        params) on the same account and pool: callers that arrive while it is in flight share
        its parsed answer (or its error). A caller that is cancelled does not cancel it for the
        others; the next call after it ends asks again."""
        # The key is the request itself; SecretStr compares by value and shows masked.
        key = (self.api_url, self._key, path, *sorted((params or {}).items()))
        flights = _FLIGHTS.setdefault(self._http, {})
        flight = flights.get(key)
        if flight is None:

            async def fetch() -> T:
                return parse(
                    await self._call("GET", self._rest(path), action=action, params=params)
                )

            flight = flights[key] = asyncio.ensure_future(fetch())
            flight.add_done_callback(functools.partial(_landed, flights, key))
        return cast(T, await asyncio.shield(flight))

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(api_url={self.api_url!r}, "
            f"serverless_url={self.serverless_url!r}, key={self.key_hint!r})"
        )

    @property
    def key_hint(self) -> str:
        """The key as people may see it: `…last4`."""
        key = self._key.get_secret_value()
        return f"…{key[-4:]}" if len(key) >= 12 else "…"

    async def aclose(self) -> None:
        """Close the connection pool if this client created it (a shared pool stays open)."""
        if self._own_http:
            await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    # --- plumbing ------------------------------------------------------------------------
    def _headers(self, bearer: str | None = None) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {bearer or self._key.get_secret_value()}",
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
        }

    def _scrub(self, text: str) -> str:
        return text.replace(self._key.get_secret_value(), self.key_hint)

    def _backoff(self, attempt: int) -> float:
        delay = min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt)
        return delay * (0.5 + self._rng.random() / 2)

    def _error(self, response: httpx.Response, action: str) -> ProviderError | RateLimited:
        """The human error for a failed response to `action` ("create the endpoint 'x'")."""
        status = response.status_code
        title, detail, errors = problem_details(response)
        detail = self._scrub("; ".join(errors) if errors else detail).rstrip(".")
        said = f": {detail}" if detail else ""
        if status == 401:
            return ProviderError(
                "RunPod rejected the API key (401).", service=SERVICE, status=401, fix=KEY_FIX
            )
        if status == 429:
            wait = retry_after(response, self._clock.now()) or BACKOFF_CAP
            return RateLimited(
                f"RunPod is rate-limiting requests (429){said}.",
                retry_after=wait,
                fix=f"Wait about {wait:.0f} s and try again.",
            )
        message, fix, retryable = self._describe(status, title, action, said)
        return ProviderError(message, service=SERVICE, status=status, fix=fix, retryable=retryable)

    @staticmethod
    def _describe(status: int, title: str, action: str, said: str) -> tuple[str, str, bool]:
        if status == 403:
            fix = "Give the API key access to this resource in the RunPod console (API Keys)."
            return f"RunPod refused to {action} (403 Forbidden){said}.", fix, False
        if status == 404:
            fix = "It may have been deleted outside Cockpit; refresh the list and try again."
            return f"RunPod could not {action}: not found (404){said}.", fix, False
        if status == 422:
            fix = "This is a bug in the request Cockpit sent; please report this message."
            return f"RunPod rejected the request to {action} as invalid (422){said}.", fix, False
        if status == 409:
            fix = "The resource is not in a state that allows this; check its status and retry."
            return f"RunPod could not {action} (409 Conflict){said}.", fix, False
        if status >= 500:
            fix = f"This is usually temporary; try again in a few minutes ({STATUS_PAGE})."
            return (
                f"RunPod had a server error while trying to {action} ({status}){said}.",
                fix,
                True,
            )
        fix = "Check the settings (GPU pool, worker counts, CUDA versions) and try again."
        return f"RunPod refused to {action} ({status} {title}){said}.", fix, False

    def _transport_error(self, exc: httpx.TransportError, url: str, action: str) -> ProviderError:
        host = urlsplit(url).netloc
        return ProviderError(
            f"Could not reach RunPod ({host}) to {action}: {type(exc).__name__}.",
            service=SERVICE,
            fix=f"Check the network and RUNPOD_API_URL / RUNPOD_SERVERLESS_URL ({STATUS_PAGE}).",
            retryable=True,
        )

    async def _send(
        self,
        method: str,
        url: str,
        *,
        action: str,
        json_body: Any = None,
        params: Mapping[str, str] | None = None,
        policy: Retry = Retry.SAFE,
        stream: bool = False,
        slow: bool = False,
        bearer: str | None = None,
    ) -> httpx.Response:
        """Send with retries; returns the final response (2xx or a non-retryable error).
        `bearer` replaces the RunPod key (a pod's own vLLM key: the account key never goes to
        a pod)."""
        timeout = self._slow_timeout if slow else self._timeout
        retried_after_5xx = False
        attempt = 0
        while True:
            request = self._http.build_request(
                method,
                url,
                json=json_body,
                params=params,
                headers=self._headers(bearer),
                timeout=timeout,
            )
            started = time.perf_counter()
            try:
                response = await self._http.send(request, stream=stream)
            except httpx.TransportError as exc:
                OUTSIDE_API_SECONDS.labels(service=SERVICE, outcome="transport_error").observe(
                    time.perf_counter() - started
                )
                error = self._transport_error(exc, url, action)
                ambiguous = not isinstance(exc, NOT_SENT)
                if ambiguous and policy is Retry.CREATE:
                    raise MaybeCreated(error) from exc
                if attempt >= self._max_retries or (ambiguous and policy is Retry.SUBMIT):
                    raise error from exc
                delay, reason = self._backoff(attempt), type(exc).__name__
                retried_after_5xx = retried_after_5xx or ambiguous
            else:
                status = response.status_code
                OUTSIDE_API_SECONDS.labels(service=SERVICE, outcome=outcome_label(status)).observe(
                    time.perf_counter() - started
                )
                if status == 404 and method == "DELETE" and retried_after_5xx:
                    await response.aclose()
                    return httpx.Response(204, request=request)
                if status != 429 and status < 500:
                    return response
                try:
                    if stream:
                        await response.aread()  # the error message needs the body
                    delay, reason = self._retry_plan(response, attempt, policy, action)
                finally:
                    await response.aclose()
                retried_after_5xx = retried_after_5xx or status >= 500
            log.warning(
                "RunPod %s %s: %s; retry %d/%d in %.2f s",
                method,
                urlsplit(url).path,
                reason,
                attempt + 1,
                self._max_retries,
                delay,
            )
            await self._clock.sleep(delay)
            attempt += 1

    @contextlib.asynccontextmanager
    async def _streamed(
        self,
        method: str,
        url: str,
        *,
        action: str,
        json_body: Any = None,
        params: Mapping[str, str] | None = None,
        slow: bool = False,
        bearer: str | None = None,
    ) -> AsyncIterator[httpx.Response]:
        """A streamed exchange (retried only before the first byte): the open response, never
        an error one; a break while reading it raises the client's error, and it is closed
        after."""
        response = await self._send(
            method,
            url,
            action=action,
            json_body=json_body,
            params=params,
            stream=True,
            slow=slow,
            bearer=bearer,
        )
        try:
            if response.is_error:
                await response.aread()
                raise self._error(response, action)
            yield response
        except httpx.TransportError as exc:
            raise self._transport_error(exc, url, action) from exc
        finally:
            await response.aclose()

    def _retry_plan(
        self, response: httpx.Response, attempt: int, policy: Retry, action: str
    ) -> tuple[float, str]:
        """How long to wait before retrying a 429/5xx, or raise when it must not be retried."""
        error = self._error(response, action)
        status = response.status_code
        if status >= 500 and policy is Retry.CREATE and isinstance(error, ProviderError):
            raise MaybeCreated(error)
        if (status >= 500 and policy is Retry.SUBMIT) or attempt >= self._max_retries:
            raise error
        if status == 429:
            wait = retry_after(response, self._clock.now())
            if wait is not None and wait > RETRY_AFTER_LIMIT:
                raise error
            return (wait if wait is not None else self._backoff(attempt)), "429 Too Many Requests"
        return self._backoff(attempt), f"{status} {response.reason_phrase}"

    async def _call(
        self,
        method: str,
        url: str,
        *,
        action: str,
        json_body: Any = None,
        params: Mapping[str, str] | None = None,
        policy: Retry = Retry.SAFE,
        slow: bool = False,
        decimals: bool = True,
    ) -> Any:
        """One JSON exchange; returns the parsed body (None for 204) or raises the error."""
        response = await self._send(
            method, url, action=action, json_body=json_body, params=params, policy=policy, slow=slow
        )
        if response.is_error:
            raise self._error(response, action)
        if response.status_code == 204 or not response.content:
            return None
        try:
            if decimals:  # money: JSON numbers become Decimal from their text, never via float
                return json.loads(response.content, parse_float=Decimal)
            return response.json()
        except ValueError:
            raise ProviderError(
                f"RunPod sent a response that is not JSON while trying to {action}.",
                service=SERVICE,
                status=response.status_code,
                fix=f"Try again shortly; if it persists RunPod may be degraded ({STATUS_PAGE}).",
                retryable=True,
            ) from None

    def _parse(self, model: type[ModelT], data: Any, action: str) -> ModelT:
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            log.error("unexpected RunPod response to %s: %s", action, exc)
            raise ProviderError(
                f"RunPod sent an unexpected response while trying to {action}.",
                service=SERVICE,
                fix="The RunPod API may have changed; please report this message.",
            ) from None

    def _rest(self, path: str) -> str:
        return f"{self.api_url}/{path.lstrip('/')}"

    def _sls(self, endpoint_id: str, path: str) -> str:
        return f"{self.serverless_url}/{endpoint_id}/{path.lstrip('/')}"

    def _items(self, data: Any, key: str, model: type[ModelT], action: str) -> list[ModelT]:
        items = data.get(key, []) if isinstance(data, dict) else []
        return [self._parse(model, item, action) for item in items]

    async def _list(self, path: str, key: str, model: type[ModelT], action: str) -> list[ModelT]:
        data = await self._call("GET", self._rest(path), action=action)
        return self._items(data, key, model, action)

    async def _create(self, path: str, key: str, body: dict[str, Any], action: str) -> Any:
        """POST a create; after an ambiguous failure, adopt a same-named resource if it exists."""
        name = body.get("name")
        for attempt in range(self._max_retries + 1):
            try:
                return await self._call(
                    "POST", self._rest(path), action=action, json_body=body, policy=Retry.CREATE
                )
            except MaybeCreated as maybe:
                found = await self._find_named(path, key, name, action, maybe.error)
                if found is not None:
                    log.warning("RunPod failed to %s but it exists; using it", action)
                    return found
                if attempt >= self._max_retries:
                    raise maybe.error from None
                await self._clock.sleep(self._backoff(attempt))
        raise AssertionError("unreachable")  # pragma: no cover

    async def _find_named(
        self, path: str, key: str, name: str | None, action: str, error: ProviderError
    ) -> Any:
        """The resource a failed create may have made anyway, or None if it surely did not.
        If RunPod cannot even be asked, the create's own error is raised: retrying blind
        could create a second GPU resource."""
        if not name:
            raise error
        try:
            data = await self._call(
                "GET", self._rest(path), action=f"list after trying to {action}"
            )
        except CockpitError as lookup:
            log.warning("could not check whether RunPod managed to %s: %s", action, lookup)
            error.fix = (
                f"It may have been created anyway: check the list before retrying. {error.fix}"
            )
            raise error from None
        matches = [i for i in (data or {}).get(key, []) if i.get("name") == name]
        matches.sort(key=lambda i: str(i.get("createdAt", "")))
        return matches[-1] if matches else None

    def pod_url(self, pod_id: str, port: int = POD_OPENAI_PORT) -> str:
        return self.pod_proxy_url.format(pod_id=pod_id, port=port)
