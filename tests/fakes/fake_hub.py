"""A loopback fake of the Hugging Face Hub, serving the bundled snapshot's real metadata.

It speaks the routes huggingface_hub 2.x calls:

- `GET /api/models?search=&sort=&limit=&pipeline_tag=&gated=&num_parameters=&filter=&expand=`
  (what `HfApi.list_models` sends), a JSON list; with `expand` only those keys (+ `_id`, `id`);
- `GET /api/models/{repo_id}` and `/api/models/{repo_id}/revision/{rev}` (`HfApi.model_info`);
- `HEAD` and `GET /{repo_id}/resolve/{revision}/{filename}` (`hf_hub_download`): the HEAD must
  carry `X-Repo-Commit` and an `ETag` (else huggingface_hub raises FileMetadataError) and a
  `Content-Length`; the GET streams the bytes.

Errors carry `X-Error-Code` (GatedRepo, RepoNotFound, EntryNotFound) so huggingface_hub raises its
specific exception classes. Knobs: gated repos answer 401 without a token and 403 for a token
not in `tokens_with_access`; `rate_limit(n)` answers the next n API calls with 429 +
Retry-After; `fail(n, status)` answers the next n requests with that status; `down = True`
answers everything with 503; `closed_endpoint()` gives a URL where nothing listens.

Usage (each test file defines its own small fixture):

    @pytest.fixture
    async def hub() -> AsyncIterator[FakeHub]:
        async with running_fake_hub() as fake:
            yield fake
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from fakes.loopback import closed_endpoint, serve
from tools.catalog import Snapshot, default_snapshot

DEFAULT_TOKENS_WITH_ACCESS = frozenset({"hf_test_token"})
API_PREFIX = "/api/"


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: tuple[tuple[str, str], ...]
    token: str | None

    def param(self, name: str) -> list[str]:
        return [v for k, v in self.query if k == name]


def _sha(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


class FakeHub:
    """State and handlers of the fake; start it with `running_fake_hub()`."""

    def __init__(
        self,
        snapshot: Snapshot | None = None,
        *,
        tokens_with_access: frozenset[str] | set[str] = DEFAULT_TOKENS_WITH_ACCESS,
    ) -> None:
        self.snapshot = snapshot or default_snapshot()
        self.models: dict[str, dict[str, Any]] = {r["id"]: r for r in self.snapshot.records()}
        self.tokens_with_access = set(tokens_with_access)
        self.requests: list[RecordedRequest] = []
        self.down = False
        self._rate_limited = 0
        self._retry_after = 1
        self._failures = 0
        self._failure_status = 503
        self.url = ""

    # -- knobs -----------------------------------------------------------------------------

    def rate_limit(self, times: int = 1, *, retry_after: int = 1) -> None:
        """The next `times` API requests (`/api/...`) get 429 with `Retry-After`. File routes are
        spared: hf_hub_download's own GET retries 429 with real sleeps."""
        self._rate_limited = times
        self._retry_after = retry_after

    def fail(self, times: int = 1, *, status: int = 503) -> None:
        """The next `times` requests of any kind get `status`."""
        self._failures = times
        self._failure_status = status

    def add_model(self, record: dict[str, Any]) -> None:
        """Serve one more model (same shape as a snapshot record)."""
        self.models[record["id"]] = record

    def count(self, path_prefix: str = "/", *, method: str | None = None) -> int:
        return sum(
            1
            for r in self.requests
            if r.path.startswith(path_prefix) and (method is None or r.method == method)
        )

    def reset_requests(self) -> None:
        self.requests.clear()

    # -- wire shapes -----------------------------------------------------------------------

    def _find(self, repo_id: str) -> dict[str, Any] | None:
        if repo_id in self.models:
            return self.models[repo_id]
        lower = repo_id.lower()  # the real Hub redirects other spellings to the canonical id
        return next((m for mid, m in self.models.items() if mid.lower() == lower), None)

    def _commit(self, record: dict[str, Any]) -> str:
        return _sha(f"{record['id']}@{self.snapshot.snapshot_date}")

    def _config_bytes(self, record: dict[str, Any]) -> bytes:
        return (json.dumps(record.get("config") or {}, indent=2) + "\n").encode()

    def _full(self, record: dict[str, Any]) -> dict[str, Any]:
        cfg = record.get("config") or {}
        st = record.get("safetensors")
        license_ = record.get("license")
        tags = ["transformers", "safetensors", cfg.get("model_type", ""), "text-generation"]
        tags += ["conversational", f"license:{license_}", "region:us"]
        if record.get("base_model"):
            tags.append(f"base_model:finetune:{record['base_model']}")
        summary_config: dict[str, Any] = {
            "architectures": cfg.get("architectures", []),
            "model_type": cfg.get("model_type"),
            "tokenizer_config": {},
        }
        if "quantization_config" in cfg:
            summary_config["quantization_config"] = {
                k: cfg["quantization_config"].get(k) for k in ("quant_method", "bits")
            }
        stored = sum(st["parameters"].values()) * 2 if st else 0
        return {
            "_id": _sha(record["id"])[:24],
            "id": record["id"],
            "modelId": record["id"],
            "author": record.get("author"),
            "sha": self._commit(record),
            "lastModified": f"{self.snapshot.snapshot_date}T00:00:00.000Z",
            "private": False,
            "gated": record.get("gated", False),
            "disabled": False,
            "downloads": record.get("downloads", 0),
            "likes": record.get("likes", 0),
            "tags": [t for t in tags if t],
            "pipeline_tag": record.get("pipeline_tag"),
            "library_name": record.get("library_name"),
            "widgetData": [],
            "config": summary_config,
            "cardData": {
                "license": license_,
                "library_name": record.get("library_name"),
                "pipeline_tag": record.get("pipeline_tag"),
                **({"base_model": record["base_model"]} if record.get("base_model") else {}),
            },
            "transformersInfo": {
                "auto_model": "AutoModelForCausalLM",
                "pipeline_tag": "text-generation",
                "processor": "AutoTokenizer",
            },
            "siblings": [
                {"rfilename": name}
                for name in (
                    ".gitattributes",
                    "README.md",
                    "config.json",
                    "generation_config.json",
                    "model.safetensors.index.json",
                    "tokenizer.json",
                    "tokenizer_config.json",
                )
            ],
            "spaces": [],
            "safetensors": st,
            "usedStorage": stored,
        }

    @staticmethod
    def _expanded(full: dict[str, Any], expand: list[str]) -> dict[str, Any]:
        if not expand:
            return full
        return {"_id": full["_id"], "id": full["id"], **{k: full.get(k) for k in expand}}

    def _listing(self, full: dict[str, Any]) -> dict[str, Any]:
        keys = ("_id", "id", "likes", "private", "downloads", "tags", "pipeline_tag")
        return {
            **{k: full[k] for k in keys},
            "library_name": full["library_name"],
            "createdAt": full["lastModified"],
            "modelId": full["id"],
        }

    # -- handlers --------------------------------------------------------------------------

    @web.middleware
    async def _middleware(
        self,
        request: web.Request,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        self.requests.append(
            RecordedRequest(
                request.method, request.path, tuple(request.query.items()), _token(request)
            )
        )
        if self.down:
            return _error(503, "ServiceUnavailable", "The Hub is down (fake).")
        if self._failures > 0:
            self._failures -= 1
            return _error(self._failure_status, None, "Internal error (fake).")
        if self._rate_limited > 0 and request.path.startswith(API_PREFIX):
            self._rate_limited -= 1
            return web.json_response(
                {"error": "You have been rate-limited; retry later."},
                status=429,
                headers={
                    "Retry-After": str(self._retry_after),
                    "RateLimit": f'"api";r=0;t={self._retry_after}',
                    "RateLimit-Policy": '"fixed window";"api";q=500;w=300',
                },
            )
        return await handler(request)

    async def _list_models(self, request: web.Request) -> web.Response:
        q = request.query
        search = (q.get("search") or "").lower()
        author = q.get("author")
        pipeline = q.get("pipeline_tag")
        gated = q.get("gated")
        filters = q.getall("filter", [])
        expand = q.getall("expand", [])
        lo, hi = _parse_num_parameters(q.get("num_parameters"))
        rows = []
        for record in self.models.values():
            full = self._full(record)
            if search and search not in record["id"].lower():
                continue
            if author and record.get("author") != author:
                continue
            if pipeline and full["pipeline_tag"] != pipeline:
                continue
            if gated is not None and bool(full["gated"]) != (gated.lower() == "true"):
                continue
            if any(f not in full["tags"] and f != full["library_name"] for f in filters):
                continue
            total = (full["safetensors"] or {}).get("total")
            if not _within(total, lo, hi):
                continue
            rows.append(full)
        sort = q.get("sort")
        if sort in ("downloads", "likes"):
            rows.sort(key=lambda r: r[sort] or 0, reverse=True)
        limit = int(q.get("limit") or 1000)
        body = [self._expanded(r, expand) if expand else self._listing(r) for r in rows[:limit]]
        return web.json_response(body)

    async def _model_info(self, request: web.Request) -> web.Response:
        repo_id = request.match_info["repo_id"]
        if "/revision/" in repo_id:
            repo_id = repo_id.split("/revision/", 1)[0]
        record = self._find(repo_id)
        if record is None:
            return _error(404, "RepoNotFound", "Repository not found")
        return web.json_response(
            self._expanded(self._full(record), request.query.getall("expand", []))
        )

    async def _resolve(self, request: web.Request) -> web.Response:
        repo_id = f"{request.match_info['org']}/{request.match_info['name']}"
        filename = request.match_info["filename"]
        record = self._find(repo_id)
        if record is None:
            return _error(404, "RepoNotFound", "Repository not found")
        if record.get("gated"):
            token = _token(request)
            if token is None:
                return _error(
                    401,
                    "GatedRepo",
                    f"Access to model {record['id']} is restricted. You must have access to it "
                    "and be authenticated to access it. Please log in.",
                )
            if token not in self.tokens_with_access:
                return _error(
                    403,
                    "GatedRepo",
                    f"Access to model {record['id']} is restricted and you are not in the "
                    "authorized list. Visit https://huggingface.co/"
                    f"{record['id']} to ask for access.",
                )
        commit = self._commit(record)
        if filename != "config.json":
            return _error(
                404, "EntryNotFound", "Entry not found", headers={"X-Repo-Commit": commit}
            )
        body = self._config_bytes(record)
        return web.Response(
            body=body,
            content_type="application/json",
            headers={"ETag": f'"{_sha(body.decode())}"', "X-Repo-Commit": commit},
        )

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware])
        app.router.add_get("/api/models", self._list_models)
        app.router.add_get("/api/models/{repo_id:.+}", self._model_info)
        app.router.add_get("/{org}/{name}/resolve/{revision}/{filename:.+}", self._resolve)
        return app


def _token(request: web.Request) -> str | None:
    auth = request.headers.get("authorization", "")
    return auth[7:] if auth.lower().startswith("bearer ") else None


def _error(
    status: int, code: str | None, message: str, *, headers: dict[str, str] | None = None
) -> web.Response:
    all_headers = {"X-Error-Message": message, **(headers or {})}
    if code:
        all_headers["X-Error-Code"] = code
    return web.json_response({"error": message}, status=status, headers=all_headers)


def _parse_size(text: str) -> float:
    text = text.strip().upper()
    scale = {"K": 1e3, "M": 1e6, "B": 1e9, "T": 1e12}.get(text[-1:], 1.0)
    number = text[:-1] if text[-1:] in "KMBT" else text
    return float(number) * scale


def _parse_num_parameters(value: str | None) -> tuple[float | None, float | None]:
    lo = hi = None
    for part in (value or "").split(","):
        if part.startswith("min:"):
            lo = _parse_size(part[4:])
        elif part.startswith("max:"):
            hi = _parse_size(part[4:])
    return lo, hi


def _within(total: int | None, lo: float | None, hi: float | None) -> bool:
    if lo is None and hi is None:
        return True
    if total is None:
        return False
    return (lo is None or total >= lo) and (hi is None or total <= hi)


@asynccontextmanager
async def running_fake_hub(
    snapshot: Snapshot | None = None,
    *,
    tokens_with_access: frozenset[str] | set[str] = DEFAULT_TOKENS_WITH_ACCESS,
) -> AsyncIterator[FakeHub]:
    """Start the fake on 127.0.0.1 (random port); `fake.url` is the endpoint to pass on."""
    fake = FakeHub(snapshot, tokens_with_access=tokens_with_access)
    async with serve(fake.app()) as url:
        fake.url = url
        yield fake


__all__ = ["FakeHub", "RecordedRequest", "closed_endpoint", "running_fake_hub"]
