"""Multi-workspace OAuth: the install flow and the installation store on both engines."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet
from fakes.fake_slack import DEFAULT_TEAM_ID, FakeSlack
from fakes.slack_env import (
    slack_env,
    slack_tools,
    texts,
)
from sqlmodel import select

from storage import slack_store
from storage.crypto import SecretBox
from storage.db import Database
from storage.models import Member
from storage.slack_models import SlackInstallation
from storage.slack_store import InstallationRecord

# --- multi-workspace OAuth -----------------------------------------------------------------


async def test_oauth_install_stores_encrypted_token_and_makes_installer_owner(
    tmp_path: Path, fake: FakeSlack
) -> None:
    fake.users["UINSTALLER"] = {"id": "UINSTALLER", "profile": {"display_name": "ines"}}
    overrides = {"SLACK_CLIENT_ID": "111.222", "SLACK_CLIENT_SECRET": "client-secret-xyz"}
    async for env in slack_env(tmp_path, fake, slack_tools(), **overrides):
        install = await env.http.get("/slack/install")
        assert install.status == 200
        page = await install.text()
        state = re.search(r"state=([A-Za-z0-9_\-]+)", page)
        assert state and "client_id=111.222" in page and "commands" in page
        cookie = install.headers["Set-Cookie"].split(";")[0]
        redirect = f"/slack/oauth_redirect?code=fake-code&state={state.group(1)}"
        done = await env.http.get(redirect, headers={"Cookie": cookie})
        assert done.status == 200, await done.text()
        access = fake.calls_to("oauth.v2.access")[0]
        assert access.body["code"] == "fake-code"

        with env.bot.services.db.session() as s:
            row = s.exec(select(SlackInstallation)).one()
            assert row.team_id == DEFAULT_TEAM_ID and row.user_id == "UINSTALLER"
            assert row.bot_token_encrypted and fake.installed_token not in row.bot_token_encrypted
            owner = s.exec(select(Member).where(Member.platform_user_id == "UINSTALLER")).one()
            assert owner.role == "owner" and owner.display_name == "ines"
            assert owner.org_id == row.org_id

        # Requests from that workspace now use the installed (decrypted) token.
        await env.command("whoami", user="UINSTALLER", user_name="ines")
        answer = await fake.wait_for("chat.postMessage")
        assert answer.token == fake.installed_token
        assert "owner" in texts(answer)

        # A state is good for one use only.
        replay = await env.http.get(redirect, headers={"Cookie": cookie})
        assert replay.status != 200 or "error" in (await replay.text()).lower()
        assert len(fake.calls_to("oauth.v2.access")) == 1


def _record(**overrides: Any) -> InstallationRecord:
    values: dict[str, Any] = {
        "client_id": "111.222",
        "team_id": "T1",
        "team_name": "Acme",
        "bot_token": "xoxb-acme-1",
        "bot_id": "B1",
        "bot_user_id": "U0BOT",
        "bot_scopes": "commands,chat:write",
        "user_id": "U1",
        "installed_at": _now(),
    }
    values.update(overrides)
    return InstallationRecord(**values)


def _now() -> Any:
    from tools.clock import FakeClock

    return FakeClock().now()


def test_slack_store_on_both_engines(database: Database) -> None:
    box = SecretBox([Fernet.generate_key().decode()])
    now = _now()
    with database.session() as s:
        slack_store.save_installation(s, record=_record(), box=box, now=now, installer_name="ann")
    with database.session() as s:
        found = slack_store.find_bot(
            s, client_id="111.222", enterprise_id=None, team_id="T1", box=box
        )
        assert found is not None and found.bot_token == "xoxb-acme-1"
        assert "xoxb" not in repr(found)
        raw = s.exec(select(SlackInstallation)).one()
        assert raw.bot_token_encrypted and "xoxb" not in raw.bot_token_encrypted
        owner = s.exec(select(Member)).one()
        assert (owner.role, owner.display_name, owner.org_id) == ("owner", "ann", raw.org_id)
    # A reinstall by someone else refreshes the bot token; they do not become owner.
    later = now.replace(hour=13)
    with database.session() as s:
        slack_store.save_installation(
            s,
            record=_record(user_id="U2", bot_token="xoxb-acme-2", installed_at=later),
            box=box,
            now=later,
        )
    with database.session() as s:
        mine = slack_store.find_installation(
            s, client_id="111.222", enterprise_id=None, team_id="T1", user_id="U1", box=box
        )
        assert mine is not None and mine.user_id == "U1" and mine.bot_token == "xoxb-acme-2"
        assert len(s.exec(select(Member)).all()) == 1
        assert (
            slack_store.find_bot(s, client_id="other", enterprise_id=None, team_id="T1", box=box)
            is None
        )
        slack_store.delete_bot(s, client_id="111.222", enterprise_id=None, team_id="T1")
    with database.session() as s:
        assert (
            slack_store.find_bot(s, client_id="111.222", enterprise_id=None, team_id="T1", box=box)
            is None
        )
        assert (
            slack_store.delete_installation(
                s, client_id="111.222", enterprise_id=None, team_id="T1"
            )
            == 2
        )
    # OAuth states: one use each, and only before they expire.
    with database.session() as s:
        slack_store.issue_state(s, state="s1", now=now, ttl_seconds=60)
        slack_store.issue_state(s, state="s2", now=now, ttl_seconds=60)
    with database.session() as s:
        assert slack_store.consume_state(s, state="s1", now=now)
        assert not slack_store.consume_state(s, state="s1", now=now)
        assert not slack_store.consume_state(s, state="s2", now=now.replace(minute=5))
