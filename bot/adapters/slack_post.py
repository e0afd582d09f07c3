"""Where one request's answers go in Slack: a channel, a thread under the first message, an
ephemeral note to one person, or the command's response_url when the bot cannot post in the
channel. Translation only: what to say was decided by the dispatcher and the tools.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any, Generic, TypeVar

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.adapters.slack_blocks import SlackMessage, escape, progress_line, render_reply, truncate
from bot.streaming import Throttle
from tools.contract import Reply

log = logging.getLogger(__name__)

# chat.postMessage errors after which the command's response_url is the only way to answer.
CANNOT_POST_ERRORS = frozenset(
    {"not_in_channel", "channel_not_found", "is_archived", "restricted_action", "cannot_dm_bot"}
)
MAX_LABEL = 80
# Streamed answers: the first words are posted at once, then the message is edited at most this
# often (chat.update is Tier 3, about 50 a minute per workspace).
STREAM_UPDATE_INTERVAL_SECONDS = 1.2
STREAM_WRITING_NOTE = "writing…"
# Slack's own streaming messages (chat.startStream/appendStream/stopStream) take small appends;
# batching them this often keeps the call count low while the text still flows.
STREAM_APPEND_INTERVAL_SECONDS = 0.5
# startStream errors that mean "this workspace or app cannot stream": do not ask again.
STREAMING_UNAVAILABLE_ERRORS = frozenset(
    {
        "unknown_method",
        "method_deprecated",
        "missing_scope",
        "not_allowed_token_type",
        "not_allowed",
        "feature_not_enabled",
        "team_not_allowed",
    }
)

Respond = Callable[..., Awaitable[Any]]
V = TypeVar("V")


class StreamingSupport:
    """Which Slack workspaces refused streaming messages. They get the batched chat.update
    fallback from then on, so a workspace without the feature costs one failed call, once."""

    def __init__(self) -> None:
        self.refused: set[str] = set()

    def allowed(self, team_id: str | None) -> bool:
        return bool(team_id) and team_id not in self.refused

    def refuse(self, team_id: str | None, error: str | None) -> None:
        if team_id and error in STREAMING_UNAVAILABLE_ERRORS:
            self.refused.add(team_id)


def defuse_mentions(text: str) -> str:
    """Model output is untrusted: `<!channel>`, `<@U1>` or `<#C1>` in it must not ping anyone.
    A zero-width space after the `<` keeps the text readable and inert. Applying it to a longer
    text keeps the result for any prefix a prefix, so streamed appends stay consistent."""
    return re.sub(r"<(?=[!@#])", "<\u200b", text)


class SlackConversation:
    """The answers to one request.

    - `thread_ts` given (mentions, DMs, approval cards): everything goes into that thread.
    - otherwise (slash commands) the answer is a new message; when the tool reports progress
      before it finishes, a short "working on it" message is posted first and the progress lines
      and the final answer go into its thread (the answer also broadcast to the channel).
    - `private_errors`: an error that nobody else has seen yet goes only to the requester.
    - `stream(delta)`: a streamed answer (model chat, Claude's text) appears as one message that
      grows; `send()` then turns that same message into the final reply. In a thread, with the
      requester's team known, that is a Slack streaming message (chat.startStream, appends,
      chat.stopStream with the reply's fields and footer); where Slack refuses streaming, the
      message is posted and edited with batched chat.update calls instead.
    """

    def __init__(
        self,
        client: AsyncWebClient,
        *,
        channel: str,
        user: str,
        sandbox: bool,
        thread_ts: str | None = None,
        respond: Respond | None = None,
        label: str = "",
        private_errors: bool = False,
        broadcast_final: bool = False,
        team_id: str | None = None,
        streaming: StreamingSupport | None = None,
    ) -> None:
        self.client = client
        self.channel = channel
        self.user = user
        self.sandbox = sandbox
        self.thread_ts = thread_ts
        self.respond = respond
        self.label = truncate(label, MAX_LABEL)
        self.private_errors = private_errors
        self.broadcast_final = broadcast_final
        self.via_response_url = False
        self.progress_count = 0
        self._stream_text = ""
        self._stream_started = False
        self._stream_ts: str | None = None
        self._stream_shown = ""
        self._throttle = Throttle(
            STREAM_UPDATE_INTERVAL_SECONDS, now=time.monotonic, sleep=asyncio.sleep
        )
        self._stream_flush: asyncio.Task[None] | None = None
        self.team_id = team_id
        self.streaming = streaming
        self._native = False  # the streamed message is a Slack streaming message
        self._native_sent = 0  # characters of defuse_mentions(text) appended so far
        self._native_broken = False

    # -- progress -------------------------------------------------------------------------

    async def progress(self, text: str) -> None:
        """A progress line from a running tool: into the thread, opening one if needed. Never
        raises: a failed progress post must not break the tool that reports it."""
        try:
            self.progress_count += 1
            if self.thread_ts is None and not self.via_response_url:
                opener = (
                    f":hourglass_flowing_sand: `{escape(self.label)}`: working on it, "
                    "progress in the thread."
                )
                self.thread_ts = await self.post(SlackMessage(text=opener, blocks=[]))
            if self.via_response_url:
                if self.respond is not None:
                    await self.respond(text=f"… {escape(text)}", response_type="ephemeral")
                return
            await self.post(progress_line(text), thread_ts=self.thread_ts)
        except Exception:
            log.warning("could not post a progress line to Slack", exc_info=True)

    # -- streamed answers -------------------------------------------------------------------

    async def stream(self, delta: str) -> None:
        """One text delta of a streamed answer. The first is posted at once (so the first words
        show within one round trip); later ones are batched into edits, at most one per
        STREAM_UPDATE_INTERVAL_SECONDS, in the background so the model is never held up.
        Nothing is lost: `send()` writes the complete answer. Never raises."""
        if not delta:
            return
        self._stream_text += delta
        try:
            if not self._stream_started:
                self._stream_started = True
                if await self._start_native_stream():
                    return
                shown = self._stream_text
                self._stream_ts = await self.post(
                    _writing(shown, self.sandbox), thread_ts=self.thread_ts
                )
                self._stream_shown = shown
                self._throttle.wrote()
            elif self._stream_ts and (self._stream_flush is None or self._stream_flush.done()):
                self._stream_flush = asyncio.get_running_loop().create_task(self._flush_later())
        except Exception:
            log.warning("could not stream an answer to Slack", exc_info=True)

    async def _start_native_stream(self) -> bool:
        """Open a Slack streaming message with the first words; False when not possible here."""
        if (
            self.streaming is None
            or not self.thread_ts
            or self.via_response_url
            or not self.streaming.allowed(self.team_id)
        ):
            return False
        text = defuse_mentions(self._stream_text)
        try:
            resp = await self.client.chat_startStream(
                channel=self.channel,
                thread_ts=self.thread_ts,
                markdown_text=text,
                recipient_team_id=self.team_id,
                recipient_user_id=self.user,
            )
        except SlackApiError as exc:
            error = exc.response.get("error") if exc.response is not None else None
            self.streaming.refuse(self.team_id, error)
            log.info("Slack streaming unavailable (%s); editing a message instead", error)
            return False
        self._stream_ts = str(resp.get("ts") or "") or None
        if self._stream_ts is None:
            return False
        self._native = True
        self._native_sent = len(text)
        self._throttle.interval = STREAM_APPEND_INTERVAL_SECONDS
        self._throttle.wrote()
        return True

    async def _flush_later(self) -> None:
        """Write what came since the last write, once the interval allows: an append to a Slack
        streaming message, else an edit of the posted message."""
        await self._throttle.wait()
        ts = self._stream_ts
        if ts and await (self._append(ts) if self._native else self._update(ts)):
            self._throttle.wrote()

    async def _update(self, ts: str) -> bool:
        text = self._stream_text
        if text == self._stream_shown:
            return False
        try:
            await self.client.chat_update(
                channel=self.channel, ts=ts, **_writing(text, self.sandbox).as_kwargs()
            )
            self._stream_shown = text
        except SlackApiError:
            log.warning("could not update a streamed answer", exc_info=True)
        return True

    async def _append(self, ts: str) -> bool:
        pending = defuse_mentions(self._stream_text)[self._native_sent :]
        if not pending or self._native_broken:
            return False
        try:
            await self.client.chat_appendStream(channel=self.channel, ts=ts, markdown_text=pending)
            self._native_sent += len(pending)
        except SlackApiError:
            # The final reply still replaces the message in send(); stop appending until then.
            self._native_broken = True
            log.warning("could not append to a streamed answer", exc_info=True)
        return True

    async def _finish_native_stream(
        self, ts: str, reply: Reply, message: SlackMessage, expires_at: datetime | None
    ) -> None:
        """Close the streaming message. When it already shows the reply's text, the rest of the
        reply (fields, table, buttons, footer) goes under it as blocks; otherwise (an error, a
        title, text that differs) the message is replaced by the whole rendered reply."""
        full = defuse_mentions(reply.text)
        streamed = defuse_mentions(self._stream_text)
        fits = (
            reply.ok
            and not reply.title
            and not self._native_broken
            and full.startswith(streamed[: self._native_sent])
        )
        if fits:
            rest = render_reply(
                reply.model_copy(update={"text": "", "title": None}),
                sandbox=self.sandbox,
                expires_at=expires_at,
            )
            await self.client.chat_stopStream(
                channel=self.channel,
                ts=ts,
                markdown_text=full[self._native_sent :] or None,
                blocks=rest.blocks or None,
            )
            return
        with contextlib.suppress(SlackApiError):
            await self.client.chat_stopStream(channel=self.channel, ts=ts)
        await self.client.chat_update(channel=self.channel, ts=ts, **message.as_kwargs())

    async def _end_stream(self) -> str | None:
        """Stop pending edits; the streamed message's ts, if one was posted."""
        task, self._stream_flush = self._stream_flush, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        return self._stream_ts

    # -- answers --------------------------------------------------------------------------

    async def send(self, reply: Reply, *, expires_at: datetime | None = None) -> str | None:
        """Post the reply; returns the message ts when there is one. An approval card shows
        when it expires (`expires_at`, else the reply's own)."""
        expires_at = expires_at or reply.expires_at
        message = render_reply(reply, sandbox=self.sandbox, expires_at=expires_at)
        streamed_ts = await self._end_stream()
        if streamed_ts:
            # The answer was streamed into a message: that message becomes the final reply.
            try:
                if self._native:
                    await self._finish_native_stream(streamed_ts, reply, message, expires_at)
                else:
                    await self.client.chat_update(
                        channel=self.channel, ts=streamed_ts, **message.as_kwargs()
                    )
                if reply.image is not None:
                    await self.upload_image(reply, thread_ts=self.thread_ts or streamed_ts)
                return streamed_ts
            except SlackApiError:
                log.warning("could not finish a streamed answer; posting it anew", exc_info=True)
        seen_by_others = self.thread_ts is not None or self._stream_started
        if reply.ephemeral or (not reply.ok and self.private_errors and not seen_by_others):
            await self.ephemeral(message)
            return None
        ts = await self.post(message, thread_ts=self.thread_ts, broadcast=self.broadcast_final)
        if reply.image is not None:
            await self.upload_image(reply, thread_ts=self.thread_ts or ts)
        return ts

    async def post(
        self, message: SlackMessage, *, thread_ts: str | None = None, broadcast: bool = False
    ) -> str | None:
        """chat.postMessage; falls back to the response_url when the bot cannot post here."""
        if not self.via_response_url:
            kwargs: dict[str, Any] = {
                "channel": self.channel,
                "unfurl_links": False,
                "unfurl_media": False,
                **message.as_kwargs(),
            }
            if thread_ts:
                kwargs["thread_ts"] = thread_ts
                if broadcast:
                    kwargs["reply_broadcast"] = True
            try:
                resp = await self.client.chat_postMessage(**kwargs)
                return str(resp.get("ts") or "") or None
            except SlackApiError as exc:
                error = exc.response.get("error") if exc.response is not None else None
                if error not in CANNOT_POST_ERRORS or self.respond is None:
                    raise
                log.info("cannot post in %s (%s): answering via response_url", self.channel, error)
                self.via_response_url = True
        if self.respond is not None:
            await self.respond(response_type="in_channel", **message.as_kwargs())
        return None

    async def ephemeral(self, message: SlackMessage) -> None:
        """Only the requester sees it: response_url when we have one, else chat.postEphemeral."""
        if self.respond is not None:
            await self.respond(
                response_type="ephemeral", replace_original=False, **message.as_kwargs()
            )
            return
        kwargs: dict[str, Any] = {"channel": self.channel, "user": self.user, **message.as_kwargs()}
        if self.thread_ts:
            kwargs["thread_ts"] = self.thread_ts
        await self.client.chat_postEphemeral(**kwargs)

    async def upload_image(self, reply: Reply, *, thread_ts: str | None) -> None:
        """Upload the reply's chart next to the answer (files_upload_v2)."""
        image = reply.image
        if image is None or self.via_response_url:
            return
        path = Path(image.path)
        if not path.is_file():
            log.warning("reply image %s does not exist; not uploaded", path)
            return
        try:
            await self.client.files_upload_v2(
                channel=self.channel,
                thread_ts=thread_ts,
                file=str(path),
                filename=path.name,
                title=image.title,
                alt_txt=image.alt or image.title,
            )
        except SlackApiError:
            log.warning("could not upload the chart %s to Slack", path.name, exc_info=True)


# -- assistant threads: progress as the thread's status ---------------------------------------

THINKING_STATUS = "is thinking…"
WORKING_STATUS = "is working: {step}"
MAX_STATUS_STEP = 60
MAX_REMEMBERED_THREADS = 1000
_ELAPSED = re.compile(r"^\[\d+s\]\s*")  # the deploy saga's "[12s] " prefix

SetStatus = Callable[..., Awaitable[Any]]  # Bolt's `set_status(status)` (AsyncSetStatus)


def status_line(progress: str) -> str:
    """A tool's progress line as a short thread status."""
    step = _ELAPSED.sub("", " ".join(progress.split()))
    return WORKING_STATUS.format(step=truncate(step, MAX_STATUS_STEP)) if step else THINKING_STATUS


class ThreadStatus:
    """The status line of one assistant thread during one answer. Never raises: once Slack
    refuses a status (not an assistant thread), it stops trying and `works` turns False."""

    def __init__(
        self,
        set_status: SetStatus,
        *,
        channel: str,
        thread_ts: str,
        on_refused: Callable[[], None] | None = None,
    ) -> None:
        self._set_status = set_status
        self._on_refused = on_refused
        self.channel = channel
        self.thread_ts = thread_ts
        self.works = True
        self.shown = False

    async def show(self, text: str) -> bool:
        if not self.works:
            return False
        try:
            await self._set_status(text)
        except Exception as exc:
            log.info("no thread status in %s (%s): progress goes in the thread", self.channel, exc)
            self.works = False
            if self._on_refused is not None:
                self._on_refused()
            return False
        self.shown = bool(text)
        return True

    def replied(self) -> None:
        self.shown = False  # Slack clears the status when the bot posts in the thread

    async def clear(self) -> None:
        if self.shown:
            await self.show("")


class AssistantConversation(SlackConversation):
    """A DM conversation in an assistant thread: progress goes to the thread's status."""

    def __init__(self, client: AsyncWebClient, *, status: ThreadStatus, **kwargs: Any) -> None:
        super().__init__(client, **kwargs)
        self.status = status

    async def progress(self, text: str) -> None:
        if await self.status.show(status_line(text)):
            self.progress_count += 1
            return
        await super().progress(text)

    async def post(
        self, message: SlackMessage, *, thread_ts: str | None = None, broadcast: bool = False
    ) -> str | None:
        ts = await super().post(message, thread_ts=thread_ts, broadcast=broadcast)
        self.status.replied()
        return ts

    async def send(self, reply: Reply, *, expires_at: datetime | None = None) -> str | None:
        ts = await super().send(reply, expires_at=expires_at)
        await self.status.clear()  # e.g. the answer was an edit of a streamed message
        return ts


class RecentThreads(Generic[V]):
    """The threads seen lately, as (channel, thread_ts), the newest `limit`, each with a value
    (the assistant threads themselves; their thread contexts)."""

    def __init__(self, limit: int = MAX_REMEMBERED_THREADS) -> None:
        self.limit = limit
        self._threads: OrderedDict[tuple[str, str], V | None] = OrderedDict()

    def add(self, channel: str, thread_ts: str, value: V | None = None) -> None:
        key = (channel, thread_ts)
        self._threads[key] = value
        self._threads.move_to_end(key)
        while len(self._threads) > self.limit:
            self._threads.popitem(last=False)

    def get(self, channel: str, thread_ts: str) -> V | None:
        return self._threads.get((channel, thread_ts))

    def discard(self, channel: str, thread_ts: str) -> None:
        self._threads.pop((channel, thread_ts), None)

    def __contains__(self, key: object) -> bool:
        return key in self._threads


def _writing(text: str, sandbox: bool) -> SlackMessage:
    return render_reply(Reply(text=text, footer=STREAM_WRITING_NOTE), sandbox=sandbox)
