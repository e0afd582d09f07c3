"""Where one request's answers go in Slack: a channel, a thread under the first message, an
ephemeral note to one person, or the command's response_url when the bot cannot post in the
channel. Translation only: what to say was decided by the dispatcher and the tools.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.adapters.slack_blocks import SlackMessage, escape, progress_line, render_reply, truncate
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

Respond = Callable[..., Awaitable[Any]]


class SlackConversation:
    """The answers to one request.

    - `thread_ts` given (mentions, DMs, approval cards): everything goes into that thread.
    - otherwise (slash commands) the answer is a new message; when the tool reports progress
      before it finishes, a short "working on it" message is posted first and the progress lines
      and the final answer go into its thread (the answer also broadcast to the channel).
    - `private_errors`: an error that nobody else has seen yet goes only to the requester.
    - `stream(delta)`: a streamed answer (model chat, Claude's text) appears as one message that
      grows; `send()` then turns that same message into the final reply.
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
        self._stream_last = 0.0
        self._stream_flush: asyncio.Task[None] | None = None

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
                shown = self._stream_text
                self._stream_ts = await self.post(
                    _writing(shown, self.sandbox), thread_ts=self.thread_ts
                )
                self._stream_shown = shown
                self._stream_last = asyncio.get_running_loop().time()
            elif self._stream_ts and (self._stream_flush is None or self._stream_flush.done()):
                self._stream_flush = asyncio.get_running_loop().create_task(self._flush_later())
        except Exception:
            log.warning("could not stream an answer to Slack", exc_info=True)

    async def _flush_later(self) -> None:
        wait = (
            self._stream_last + STREAM_UPDATE_INTERVAL_SECONDS - asyncio.get_running_loop().time()
        )
        if wait > 0:
            await asyncio.sleep(wait)
        text = self._stream_text
        if not self._stream_ts or text == self._stream_shown:
            return
        try:
            await self.client.chat_update(
                channel=self.channel, ts=self._stream_ts, **_writing(text, self.sandbox).as_kwargs()
            )
            self._stream_shown = text
        except SlackApiError:
            log.warning("could not update a streamed answer", exc_info=True)
        self._stream_last = asyncio.get_running_loop().time()

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
        """Post the reply; returns the message ts when there is one."""
        message = render_reply(reply, sandbox=self.sandbox, expires_at=expires_at)
        streamed_ts = await self._end_stream()
        if streamed_ts:
            # The answer was streamed into a message: that message becomes the final reply.
            try:
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


def _writing(text: str, sandbox: bool) -> SlackMessage:
    return render_reply(Reply(text=text, footer=STREAM_WRITING_NOTE), sandbox=sandbox)
