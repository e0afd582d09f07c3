"""Discord gateway payloads as JSON dicts, shaped like the ones Discord sends (developer docs
"Interactions" → "Receiving and Responding", "Message Components"; "Messages").

`SLASH_COMMAND_EXAMPLE` and `COMPONENT_CLICK_EXAMPLE` are canonical examples; the builders make
variants (`slash_command("deploy", {"model": "qwen"})`, `component_click("cockpit:approve:1",
message)`, `guild_message("hello")`). Feed interactions to a logged-in client with
`client._connection.parse_interaction_create(payload)` (what the gateway does) and messages with
`client._connection.parse_message_create(payload)`.
"""

from __future__ import annotations

import itertools
from typing import Any

from fakes.fake_discord import APPLICATION_ID, BOT_USER_ID

GUILD_ID = 1_000_000_000_000_000_001
CHANNEL_ID = 1_000_000_000_000_000_002
ALICE_ID = 1_000_000_000_000_000_011
BOB_ID = 1_000_000_000_000_000_012
CAROL_ID = 1_000_000_000_000_000_013
ADMINS_ROLE_ID = 1_000_000_000_000_000_021
OPS_ROLE_ID = 1_000_000_000_000_000_022
DM_CHANNEL_ID = 1_000_000_000_000_000_031
ATTACHMENT_SIZE_LIMIT = 10_485_760
ALL_PERMISSIONS = "2251799813685247"

USER_NAMES = {ALICE_ID: "alice", BOB_ID: "bob", CAROL_ID: "carol"}
OPTION_TYPES = {str: 3, int: 4, bool: 5, float: 10}

_ids = itertools.count(1_400_000_000_000_000_001)


def new_id() -> int:
    return next(_ids)


def user(user_id: int = ALICE_ID, name: str | None = None) -> dict[str, Any]:
    name = name or USER_NAMES.get(user_id, f"user{user_id % 1000}")
    return {
        "id": str(user_id),
        "username": name,
        "discriminator": "0",
        "global_name": name.title(),
        "avatar": None,
        "public_flags": 0,
    }


def member(user_id: int = ALICE_ID, roles: tuple[int, ...] = ()) -> dict[str, Any]:
    return {
        "user": user(user_id),
        "roles": [str(r) for r in roles],
        "nick": None,
        "avatar": None,
        "joined_at": "2026-01-05T10:00:00.000000+00:00",
        "premium_since": None,
        "deaf": False,
        "mute": False,
        "flags": 0,
        "pending": False,
        "permissions": ALL_PERMISSIONS,
    }


def text_channel(channel_id: int = CHANNEL_ID, guild_id: int = GUILD_ID) -> dict[str, Any]:
    return {
        "id": str(channel_id),
        "type": 0,
        "guild_id": str(guild_id),
        "name": "ops",
        "position": 1,
        "permission_overwrites": [],
        "nsfw": False,
        "parent_id": None,
        "topic": None,
        "rate_limit_per_user": 0,
        "last_message_id": None,
        "flags": 0,
        "permissions": ALL_PERMISSIONS,
    }


def thread_channel(
    thread_id: int, *, parent_id: int = CHANNEL_ID, guild_id: int = GUILD_ID, name: str = "chat"
) -> dict[str, Any]:
    return {
        "id": str(thread_id),
        "type": 11,
        "guild_id": str(guild_id),
        "parent_id": str(parent_id),
        "owner_id": str(BOT_USER_ID),
        "name": name,
        "last_message_id": None,
        "rate_limit_per_user": 0,
        "message_count": 1,
        "member_count": 2,
        "total_message_sent": 1,
        "flags": 0,
        "permissions": ALL_PERMISSIONS,
        "thread_metadata": {
            "archived": False,
            "auto_archive_duration": 1440,
            "archive_timestamp": "2026-11-25T12:00:00.000000+00:00",
            "locked": False,
        },
    }


def dm_channel(channel_id: int = DM_CHANNEL_ID, user_id: int = ALICE_ID) -> dict[str, Any]:
    return {"id": str(channel_id), "type": 1, "recipients": [user(user_id)], "flags": 0}


def _base(
    kind: int,
    *,
    user_id: int,
    roles: tuple[int, ...],
    guild_id: int | None,
    channel: dict[str, Any] | None,
    interaction_id: int | None,
) -> dict[str, Any]:
    iid = interaction_id or new_id()
    if channel is None:
        channel = text_channel(guild_id=guild_id) if guild_id else dm_channel(user_id=user_id)
    payload: dict[str, Any] = {
        "id": str(iid),
        "application_id": str(APPLICATION_ID),
        "type": kind,
        "token": f"itoken-{iid}",
        "version": 1,
        "channel": channel,
        "channel_id": channel["id"],
        "app_permissions": ALL_PERMISSIONS,
        "locale": "en-US",
        "entitlements": [],
        "attachment_size_limit": ATTACHMENT_SIZE_LIMIT,
    }
    if guild_id:
        payload.update(
            guild_id=str(guild_id),
            guild={"id": str(guild_id), "locale": "en-US", "features": []},
            guild_locale="en-US",
            member=member(user_id, roles),
            authorizing_integration_owners={"0": str(guild_id)},
            context=0,
        )
    else:
        payload.update(
            user=user(user_id),
            authorizing_integration_owners={"0": str(user_id)},
            context=1,
        )
    return payload


def _options(values: dict[str, Any], focused: str | None = None) -> list[dict[str, Any]]:
    options = []
    for name, value in values.items():
        option: dict[str, Any] = {"name": name, "type": OPTION_TYPES[type(value)], "value": value}
        if name == focused:
            option["focused"] = True
        options.append(option)
    return options


def slash_command(
    name: str,
    options: dict[str, Any] | None = None,
    *,
    user_id: int = ALICE_ID,
    roles: tuple[int, ...] = (),
    guild_id: int | None = GUILD_ID,
    channel: dict[str, Any] | None = None,
    interaction_id: int | None = None,
) -> dict[str, Any]:
    """An APPLICATION_COMMAND interaction (type 2) for a chat-input command."""
    payload = _base(
        2,
        user_id=user_id,
        roles=roles,
        guild_id=guild_id,
        channel=channel,
        interaction_id=interaction_id,
    )
    payload["data"] = {
        "id": str(new_id()),
        "name": name,
        "type": 1,
        "options": _options(options or {}),
    }
    if guild_id:
        payload["data"]["guild_id"] = str(guild_id)
    return payload


def autocomplete(
    name: str, options: dict[str, Any], *, focused: str, user_id: int = ALICE_ID
) -> dict[str, Any]:
    """An APPLICATION_COMMAND_AUTOCOMPLETE interaction (type 4)."""
    payload = slash_command(name, options, user_id=user_id)
    payload["type"] = 4
    payload["data"]["options"] = _options(options, focused=focused)
    return payload


def component_click(
    custom_id: str,
    message: dict[str, Any],
    *,
    user_id: int = ALICE_ID,
    roles: tuple[int, ...] = (),
    guild_id: int | None = GUILD_ID,
    channel: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A MESSAGE_COMPONENT interaction (type 3): a button on `message` was clicked."""
    payload = _base(
        3, user_id=user_id, roles=roles, guild_id=guild_id, channel=channel, interaction_id=None
    )
    payload["message"] = message
    payload["data"] = {"custom_id": custom_id, "component_type": 2}
    return payload


def guild_message(
    content: str,
    *,
    channel_id: int = CHANNEL_ID,
    guild_id: int = GUILD_ID,
    user_id: int = ALICE_ID,
    roles: tuple[int, ...] = (),
    mentions_bot: bool = False,
    bot_author: bool = False,
) -> dict[str, Any]:
    """A MESSAGE_CREATE event in a guild channel (or thread)."""
    author = user(user_id)
    if bot_author:
        author["bot"] = True
    member_data = member(user_id, roles)
    member_data.pop("user")
    mentions = []
    if mentions_bot:
        mentions.append({**user(BOT_USER_ID, "cockpit"), "bot": True})
    return {
        "id": str(new_id()),
        "channel_id": str(channel_id),
        "guild_id": str(guild_id),
        "type": 0,
        "content": content,
        "author": author,
        "member": member_data,
        "mentions": mentions,
        "mention_roles": [],
        "mention_everyone": False,
        "attachments": [],
        "embeds": [],
        "components": [],
        "pinned": False,
        "tts": False,
        "timestamp": "2026-11-25T12:00:00.000000+00:00",
        "edited_timestamp": None,
        "flags": 0,
    }


def dm_message(content: str, *, user_id: int = ALICE_ID) -> dict[str, Any]:
    """A MESSAGE_CREATE event in the bot's DM with a person (no guild_id)."""
    payload = guild_message(content, channel_id=DM_CHANNEL_ID, user_id=user_id)
    payload.pop("guild_id")
    payload.pop("member")
    return payload


# Canonical examples (what Discord sends for `/deploy model:qwen` and a click on Approve).
SLASH_COMMAND_EXAMPLE: dict[str, Any] = slash_command(
    "deploy", {"model": "qwen"}, interaction_id=1_400_000_000_000_000_000
)
COMPONENT_CLICK_EXAMPLE: dict[str, Any] = component_click(
    "cockpit:approve:1",
    {
        "id": "1400000000000000100",
        "channel_id": str(CHANNEL_ID),
        "type": 20,
        "content": "",
        "author": {**user(BOT_USER_ID, "cockpit"), "bot": True},
        "embeds": [{"title": "Deploy Qwen/Qwen2.5-7B-Instruct on ADA_24?", "type": "rich"}],
        "components": [
            {
                "type": 1,
                "components": [
                    {"type": 2, "style": 3, "label": "Approve", "custom_id": "cockpit:approve:1"},
                    {"type": 2, "style": 4, "label": "Cancel", "custom_id": "cockpit:cancel:1"},
                ],
            }
        ],
        "attachments": [],
        "mentions": [],
        "mention_roles": [],
        "pinned": False,
        "mention_everyone": False,
        "tts": False,
        "timestamp": "2026-11-25T12:00:00.000000+00:00",
        "edited_timestamp": None,
        "flags": 0,
        "application_id": str(APPLICATION_ID),
        "webhook_id": str(APPLICATION_ID),
    },
)
