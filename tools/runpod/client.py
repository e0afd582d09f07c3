"""RunPod client: REST v2 control plane and the serverless data plane, async on httpx.

Built against the official REST v2 OpenAPI spec (a copy ships as
`tools/runpod/sandbox/runpod-rest-v2.openapi.json`); not against REST v1 (retired 2026-11-15)
or GraphQL (retiring early 2027). v2 request bodies are strict: the typed request models below
forbid unknown fields so a typo fails here, before RunPod answers 422.

Transport
- One `httpx.AsyncClient` (connection pool) may be shared by many clients, one per
  organisation key: the key travels as a per-request `Authorization: Bearer` header, never in
  the pool. `make_http_pool()` builds a suitable pool.
- The key is kept in a `SecretStr`; it never appears in logs, exception text or `repr` (which
  shows `…last4` only), and any echo of it in a server message is scrubbed.

Retries (a small loop rather than tenacity: each wait depends on the response's `Retry-After`,
waits must go through the injectable `clock.sleep`, and creates need a look-up step between
attempts — three hooks that made the tenacity version longer than the loop)
- 429, 5xx and transport errors are retried up to `max_retries` times with exponential backoff
  and jitter (0.5 s × 2^n, capped at 30 s, scaled by a random factor in [0.5, 1]). A 429's
  `Retry-After` (seconds or HTTP date) is honoured exactly; if it asks for more than
  `RETRY_AFTER_LIMIT` seconds the client raises `RateLimited` at once instead of blocking.
- Creates (`POST /templates`, `/serverless`, `/pods`) are not idempotent and RunPod has been
  seen creating a resource while answering 500. After a 5xx or an ambiguous transport error
  (the request may have reached the server) the client lists that kind of resource and returns
  the one with the requested name if it exists; only if none does is the create retried. This
  relies on names being unique, which the bot guarantees (`cockpit-...`). 429 and connection
  failures (nothing was sent) are retried directly.
- Job submissions (`/run`, `/runsync`) are retried only when they surely did not run (429,
  connection failures); a 5xx there is surfaced, never resubmitted.
- A DELETE retried after a 5xx that then gets 404 counts as done (the first attempt worked).

Errors: every failure becomes one `ProviderError(service="runpod")` (or `RateLimited`) whose
text names the problem and the fix; RFC 9457 problem bodies (`title`, `detail`, `errors[]`)
are folded into the message.
"""

from __future__ import annotations

from tools.runpod.control import ControlPlane
from tools.runpod.serverless import ServerlessPlane
from tools.runpod.transport import make_http_pool

__all__ = ["RunPodClient", "make_http_pool"]


class RunPodClient(ControlPlane, ServerlessPlane):
    """Async RunPod client for one API key (REST v2 + serverless data plane)."""
