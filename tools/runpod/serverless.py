"""The RunPod serverless data plane (`{serverless_url}/{endpoint_id}/...`): health, jobs and the
OpenAI-compatible chat route, plus chat with a pod's vLLM through RunPod's proxy."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import httpx

from tools.errors import ProviderError
from tools.runpod.models import ChatCompletion, ChatDelta, ChatUsage, EndpointHealth, JobStatus
from tools.runpod.transport import SERVICE, Retry, RunPodConnection, sse_data

log = logging.getLogger(__name__)

DEFAULT_MAX_TOKENS = 512


class ServerlessPlane(RunPodConnection):
    """Data-plane calls: health, jobs, chat."""

    async def health(self, endpoint_id: str) -> EndpointHealth:
        """Worker and job counts of an endpoint (does not wake a scaled-to-zero endpoint)."""
        action = f"check the health of endpoint {endpoint_id}"
        data = await self._call(
            "GET", self._sls(endpoint_id, "health"), action=action, decimals=False
        )
        return self._parse(EndpointHealth, data, action)

    async def run(
        self,
        endpoint_id: str,
        job_input: Any,
        *,
        webhook: str | None = None,
        policy: Mapping[str, Any] | None = None,
    ) -> JobStatus:
        """Queue a job (`/run`); returns its id and status (usually IN_QUEUE)."""
        body = self._job_body(job_input, webhook, policy)
        action = f"submit a job to endpoint {endpoint_id}"
        data = await self._call(
            "POST",
            self._sls(endpoint_id, "run"),
            action=action,
            json_body=body,
            policy=Retry.SUBMIT,
            decimals=False,
        )
        return self._parse(JobStatus, data, action)

    async def runsync(
        self,
        endpoint_id: str,
        job_input: Any,
        *,
        wait_ms: int | None = None,
        policy: Mapping[str, Any] | None = None,
    ) -> JobStatus:
        """Run a job and wait (`/runsync`); may still return IN_QUEUE/IN_PROGRESS: poll
        `status` then. FAILED results keep their `error`."""
        params = {"wait": str(wait_ms)} if wait_ms is not None else None
        action = f"run a job on endpoint {endpoint_id}"
        data = await self._call(
            "POST",
            self._sls(endpoint_id, "runsync"),
            action=action,
            params=params,
            json_body=self._job_body(job_input, None, policy),
            policy=Retry.SUBMIT,
            slow=True,
            decimals=False,
        )
        return self._parse(JobStatus, data, action)

    @staticmethod
    def _job_body(
        job_input: Any, webhook: str | None, policy: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"input": job_input}
        if webhook:
            body["webhook"] = webhook
        if policy:
            body["policy"] = dict(policy)
        return body

    async def status(self, endpoint_id: str, job_id: str) -> JobStatus:
        action = f"get the status of job {job_id}"
        data = await self._call(
            "GET", self._sls(endpoint_id, f"status/{job_id}"), action=action, decimals=False
        )
        return self._parse(JobStatus, data, action)

    async def cancel(self, endpoint_id: str, job_id: str) -> JobStatus:
        action = f"cancel job {job_id}"
        data = await self._call(
            "POST", self._sls(endpoint_id, f"cancel/{job_id}"), action=action, decimals=False
        )
        return self._parse(JobStatus, data, action)

    async def list_models(self, endpoint_id: str) -> list[str]:
        """Model ids served by an endpoint's OpenAI-compatible route (wakes the endpoint)."""
        action = f"list the models of endpoint {endpoint_id}"
        data = await self._call(
            "GET",
            self._sls(endpoint_id, "openai/v1/models"),
            action=action,
            slow=True,
            decimals=False,
        )
        return [str(m.get("id")) for m in (data or {}).get("data", []) if isinstance(m, dict)]

    @staticmethod
    def _chat_body(
        messages: Sequence[Mapping[str, Any]],
        model: str,
        max_tokens: int,
        temperature: float | None,
        extra: Mapping[str, Any] | None,
        stream: bool,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": model,
            "messages": [dict(m) for m in messages],
            "max_tokens": max_tokens,
            **(extra or {}),
        }
        if temperature is not None:
            body["temperature"] = temperature
        if stream:
            body.update(stream=True, stream_options={"include_usage": True})
        return body

    async def chat_completion(
        self,
        endpoint_id: str,
        messages: Sequence[Mapping[str, Any]],
        model: str,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        *,
        temperature: float | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> ChatCompletion:
        """A whole (non-streamed) OpenAI-compatible chat completion."""
        action = f"chat with the model on endpoint {endpoint_id}"
        body = self._chat_body(messages, model, max_tokens, temperature, extra, stream=False)
        data = await self._call(
            "POST",
            self._sls(endpoint_id, "openai/v1/chat/completions"),
            action=action,
            json_body=body,
            slow=True,
            decimals=False,
        )
        choice = ((data or {}).get("choices") or [{}])[0]
        usage = (data or {}).get("usage")
        return ChatCompletion(
            id=str(data.get("id", "")),
            model=str(data.get("model", model)),
            content=str((choice.get("message") or {}).get("content") or ""),
            finish_reason=choice.get("finish_reason"),
            usage=ChatUsage.model_validate(usage) if isinstance(usage, dict) else None,
        )

    async def stream_chat(
        self,
        endpoint_id: str,
        messages: Sequence[Mapping[str, Any]],
        model: str,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        *,
        temperature: float | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> AsyncIterator[ChatDelta]:
        """Stream a chat completion: each token as a `ChatDelta` as soon as it arrives, then a
        delta with the finish reason, then one with the usage (requested via include_usage).
        Retries happen only before the first byte; a stream that breaks raises ProviderError."""
        action = f"chat with the model on endpoint {endpoint_id}"
        body = self._chat_body(messages, model, max_tokens, temperature, extra, stream=True)
        url = self._sls(endpoint_id, "openai/v1/chat/completions")
        async for delta in self._stream_chat(url, body, action):
            yield delta

    async def stream_pod_chat(
        self,
        pod_id: str,
        api_key: str,
        messages: Sequence[Mapping[str, Any]],
        model: str,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        *,
        extra: Mapping[str, Any] | None = None,
    ) -> AsyncIterator[ChatDelta]:
        """`stream_chat` for a pod running vLLM's OpenAI server, through RunPod's proxy, with
        the pod's own API key (`VLLM_API_KEY`); `extra` adds request fields (ignore_eos)."""
        action = f"chat with the model on pod {pod_id}"
        body = self._chat_body(messages, model, max_tokens, None, extra, stream=True)
        url = f"{self.pod_url(pod_id)}/v1/chat/completions"
        try:
            async for delta in self._stream_chat(url, body, action, bearer=api_key):
                yield delta
        except ProviderError as exc:
            if exc.status != 401:
                raise
            raise ProviderError(
                f"The model server on pod {pod_id} refused the bot's key (401): the pod was "
                "started without it, or COCKPIT_SECRET_KEY changed since.",
                service=SERVICE,
                status=401,
                fix="Delete the deployment and deploy it again.",
            ) from exc

    async def _stream_chat(
        self, url: str, body: dict[str, Any], action: str, *, bearer: str | None = None
    ) -> AsyncIterator[ChatDelta]:
        async with self._streamed(
            "POST", url, action=action, json_body=body, slow=True, bearer=bearer
        ) as response:
            async for delta in self._deltas(response, action):
                yield delta

    async def _deltas(self, response: httpx.Response, action: str) -> AsyncIterator[ChatDelta]:
        async for data in sse_data(response):
            if data.strip() == "[DONE]":
                return
            try:
                chunk = json.loads(data)
            except ValueError:
                log.warning("skipping a malformed SSE event while trying to %s", action)
                continue
            if chunk.get("error"):
                error = chunk["error"]
                detail = error.get("message") if isinstance(error, dict) else error
                raise ProviderError(
                    f"The model failed mid-reply while trying to {action}: "
                    f"{self._scrub(str(detail))}",
                    service=SERVICE,
                    fix="Try again; if it keeps failing check the endpoint's workers and logs.",
                    retryable=True,
                )
            for choice in chunk.get("choices") or []:
                content = (choice.get("delta") or {}).get("content") or ""
                finish = choice.get("finish_reason")
                if content or finish:
                    yield ChatDelta(content=content, finish_reason=finish)
            if isinstance(chunk.get("usage"), dict):
                yield ChatDelta(usage=ChatUsage.model_validate(chunk["usage"]))
