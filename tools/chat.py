"""Chat with a deployed model: the thread's history from the database, an OpenAI-compatible
streaming call to the endpoint, the answer streamed to the surface and stored with its usage."""

from __future__ import annotations

from typing import Any

from storage import conversations, deployments
from storage.conversations import NewMessage
from storage.models import Deployment, DeploymentStatus
from tools.contract import Reply, Role, SideEffect, ToolContext, ToolInput, arg, tool
from tools.deploy.lookup import load_deployment
from tools.deploy.plan import pod_api_key
from tools.errors import Conflict, InvalidInput

CHAT_HISTORY_MESSAGES = 20  # the last 10 exchanges go with each request
CHAT_MAX_TOKENS = 512
CHATTABLE = ("healthy", "degraded", "waiting", "unhealthy")


class ChatInput(ToolInput):
    deployment: str = arg(description="Number or name of the deployment", positional=True)
    message: list[str] = arg(default_factory=list, description="What to say", positional=True)


def chat_thread(tc: ToolContext, dep: Deployment) -> tuple[str, str]:
    """(channel, thread) of the conversation: the surface's thread, or one per deployment on
    surfaces without threads (the console)."""
    return tc.request.channel or "-", tc.request.thread or f"deployment-{dep.id}"


@tool(
    name="chat_with_model",
    command="chat",
    input_model=ChatInput,
    role=Role.member,
    side_effect=SideEffect.spend,
    group="deploy",
    description="Talk to a deployed model; the conversation remembers this thread.",
    examples=("/chat 3 write a haiku about GPUs", "/chat prod-chat"),
)
async def chat_with_model(tc: ToolContext, args: ChatInput) -> Reply:
    dep = await load_deployment(tc, args.deployment)
    if dep.status == DeploymentStatus.starting:
        raise Conflict(
            f"#{dep.id} {dep.name} is starting: its pod is loading the model.",
            fix=f"`/status {dep.id}` shows when it is healthy; then chat.",
        )
    if dep.status not in CHATTABLE or not (dep.provider_endpoint_id or dep.provider_pod_id):
        raise Conflict(
            f"#{dep.id} {dep.name} is {dep.status}; it cannot chat now.",
            fix=f"`/scale {dep.id} --max 1` starts a stopped deployment."
            if dep.status == DeploymentStatus.stopped
            else "Deploy it again with /deploy.",
        )
    text = " ".join(args.message).strip()
    channel, thread = chat_thread(tc, dep)
    now = tc.services.clock.now()
    assert dep.id is not None
    dep_id = dep.id

    def open_conversation(s: Any) -> tuple[int, list[Any]]:
        conv = conversations.get_or_create(
            s,
            org_id=tc.org_id,
            platform=tc.request.platform.value,
            channel=channel,
            thread=thread,
            now=now,
            workspace_id=tc.request.workspace_id,
            kind=conversations.MODEL_CHAT,
        )
        if conv.deployment_id != dep_id:
            conv.deployment_id, conv.kind = dep_id, conversations.MODEL_CHAT
            s.add(conv)
        assert conv.id is not None
        history = conversations.recent_messages(
            s, org_id=tc.org_id, conversation_id=conv.id, limit=CHAT_HISTORY_MESSAGES
        )
        return conv.id, history

    conv_id, history = await tc.services.db.run(open_conversation)
    if not text:
        return Reply(
            text=f"This conversation now talks to #{dep.id} {dep.name} "
            f"({dep.model_id}). Write your message."
        )
    answer, prompt_tokens, completion_tokens = await _relay(tc, dep, history, text)

    def record(s: Any) -> None:
        conversations.append(
            s,
            org_id=tc.org_id,
            conversation_id=conv_id,
            now=now,
            messages=[
                NewMessage("user", text, prompt_tokens),
                NewMessage("assistant", answer, completion_tokens),
            ],
        )
        deployments.update(
            s,
            org_id=tc.org_id,
            deployment_id=dep_id,
            now=tc.services.clock.now(),
            last_request_at=tc.services.clock.now(),
        )

    await tc.services.db.run(record)
    return Reply(
        text=answer,
        footer=f"#{dep.id} {dep.model_id} · {prompt_tokens} prompt + "
        f"{completion_tokens} completion tokens",
    )


async def _relay(
    tc: ToolContext, dep: Deployment, history: list, text: str
) -> tuple[str, int, int]:
    if len(text) > 20_000:
        raise InvalidInput("That message is too long (over 20,000 characters).")
    messages = [
        {"role": m.role, "content": m.content} for m in history if m.role in ("user", "assistant")
    ]
    messages.append({"role": "user", "content": text})
    client = await tc.services.db.call(tc.services.runpod_for, tc.org_id)
    parts: list[str] = []
    prompt_tokens = completion_tokens = 0
    if dep.provider_endpoint_id:
        deltas = client.stream_chat(
            dep.provider_endpoint_id, messages, model=dep.model_id, max_tokens=CHAT_MAX_TOKENS
        )
    else:
        assert dep.provider_pod_id
        deltas = client.stream_pod_chat(
            dep.provider_pod_id,
            pod_api_key(tc.services, dep),
            messages,
            model=dep.model_id,
            max_tokens=CHAT_MAX_TOKENS,
        )
    async for delta in deltas:
        if delta.content:
            parts.append(delta.content)
            if tc.stream is not None:
                await tc.stream(delta.content)
        if delta.usage is not None:
            prompt_tokens = delta.usage.prompt_tokens
            completion_tokens = delta.usage.completion_tokens
    return "".join(parts), prompt_tokens, completion_tokens
