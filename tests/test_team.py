"""Teams and access through the harness: invites, roles, credentials, API keys, audit."""

from __future__ import annotations

import logging
import re

import pytest
from sqlalchemy import text

from bot.testing import BotHarness
from storage import audit


def _code(reply_text: str) -> str:
    m = re.search(r"CK-[0-9A-F]{8}-[0-9A-F]{8}", reply_text)
    assert m, reply_text
    return m.group(0)


def _audit(bot: BotHarness, **kw):
    org = bot.ctx(user="owner1", workspace="T1").org_id
    with bot.services.db.session() as s:
        return audit.query(s, org_id=org, **kw)


async def test_invite_works_once_and_expires(cockpit: BotHarness) -> None:
    await cockpit.send("/whoami", user="owner1", workspace="T1")  # first user: owner
    inv = await cockpit.send("/invite --role admin", user="owner1", workspace="T1")
    code = _code(inv.text)
    # A Discord guild joins with the code: its workspace now belongs to T1's organisation.
    joined = await cockpit.send(f"/join {code}", user="dana", workspace="G1")
    assert joined.ok, joined.text
    assert "This workspace is now part of it" in joined.text
    dana = cockpit.ctx(user="dana", workspace="G1")
    assert dana.org_id == cockpit.ctx(user="owner1", workspace="T1").org_id
    assert dana.role.value == "admin"
    again = await cockpit.send(f"/join {code}", user="erin", workspace="G2")
    assert not again.ok and "already used" in again.text
    late = _code((await cockpit.send("/invite --hours 1", user="owner1", workspace="T1")).text)
    cockpit.clock.advance(3601)
    expired = await cockpit.send(f"/join {late}", user="erin", workspace="G2")
    assert not expired.ok and "expired" in expired.text


async def test_invite_bound_to_a_user(cockpit: BotHarness) -> None:
    await cockpit.send("/whoami", user="owner1", workspace="T1")
    code = _code((await cockpit.send("/invite bob", user="owner1", workspace="T1")).text)
    wrong = await cockpit.send(f"/join {code}", user="mallory", workspace="G9")
    assert not wrong.ok and "for someone else" in wrong.text


async def test_role_changes_are_audited_and_limited(cockpit: BotHarness) -> None:
    await cockpit.send("/whoami", user="owner1", workspace="T1")
    await cockpit.send("/whoami", user="bob", workspace="T1")  # joins as member
    selfraise = await cockpit.send("/role bob admin", user="bob", workspace="T1")
    assert not selfraise.ok and "needs the admin role" in selfraise.text
    ok = await cockpit.send("/role @bob admin", user="owner1", workspace="T1")
    assert ok.ok and "member → admin" in ok.text
    no_owner = await cockpit.send("/role owner1 member", user="bob", workspace="T1")
    assert not no_owner.ok and "cannot change that" in no_owner.text
    grant_owner = await cockpit.send("/role bob owner", user="bob", workspace="T1")
    assert not grant_owner.ok and "cannot grant owner" in grant_owner.text
    last = await cockpit.send("/role owner1 admin", user="owner1", workspace="T1")
    assert not last.ok and "last owner" in last.text
    rows = _audit(cockpit, tool="set_role")
    assert {r.outcome for r in rows} >= {"succeeded", "denied", "failed"}


async def test_transfer_and_leave(cockpit: BotHarness) -> None:
    await cockpit.send("/whoami", user="owner1", workspace="T1")
    await cockpit.send("/whoami", user="carol", workspace="T1")
    cant = await cockpit.send("/leave", user="owner1", workspace="T1")
    assert not cant.ok and "last owner" in cant.text
    assert (await cockpit.send("/transfer carol", user="owner1", workspace="T1")).ok
    assert cockpit.ctx(user="carol", workspace="T1").role.value == "owner"
    assert (await cockpit.send("/leave", user="owner1", workspace="T1")).ok
    members = (await cockpit.send("/members", user="carol", workspace="T1")).as_plain_text()
    assert "owner1" not in members and "carol" in members


async def test_stored_key_is_encrypted_and_never_shown(cockpit: BotHarness, caplog) -> None:
    key = "rpa_TOPSECRETKEYVALUE9876"
    with caplog.at_level(logging.DEBUG):
        saved = await cockpit.send(f"/connect runpod {key}", user="owner1", workspace="T1")
        listed = await cockpit.send("/credentials", user="owner1", workspace="T1")
    assert saved.ok and "…9876" in saved.text and key not in saved.as_plain_text()
    assert "…9876" in listed.as_plain_text() and key not in listed.as_plain_text()
    assert key not in caplog.text
    with cockpit.services.db.engine.connect() as conn:
        dump = " ".join(
            str(v)
            for table in ("credential", "auditevent", "approval", "processedevent")
            for row in conn.execute(text(f"select * from {table}"))
            for v in row
        )
    assert key not in dump and "TOPSECRET" not in dump
    gone = await cockpit.send("/disconnect runpod", user="owner1", workspace="T1")
    assert gone.ok


async def test_cross_organisation_attempts_are_refused_and_audited(cockpit: BotHarness) -> None:
    await cockpit.send("/whoami", user="owner1", workspace="T1")
    await cockpit.send("/whoami", user="bob", workspace="T1")
    await cockpit.send("/whoami", user="eve", workspace="EVIL")  # owner of another org
    key = await cockpit.send("/apikey ci", user="owner1", workspace="T1")
    key_id = re.search(r"#(\d+)", key.title or "").group(1)  # type: ignore[union-attr]
    revoke = await cockpit.send(f"/revoke {key_id}", user="eve", workspace="EVIL")
    assert not revoke.ok and "No active API key" in revoke.text
    role = await cockpit.send("/role bob viewer", user="eve", workspace="EVIL")
    assert not role.ok and "No member bob" in role.text
    # an approval id from another organisation is "not found", and audited there
    approve = await cockpit.approve(1, user="eve", workspace="EVIL")
    assert not approve.ok and "not found" in approve.text
    eve_org = cockpit.ctx(user="eve", workspace="EVIL").org_id
    with cockpit.services.db.session() as s:
        outcomes = {(r.tool, r.outcome) for r in audit.query(s, org_id=eve_org)}
    assert ("revoke_api_key", "failed") in outcomes and ("set_role", "failed") in outcomes
    assert ("approval", "denied") in outcomes
    assert cockpit.ctx(user="bob", workspace="T1").role.value == "member"


async def test_audit_query(cockpit: BotHarness) -> None:
    await cockpit.send("/whoami", user="owner1", workspace="T1")
    await cockpit.send("/members", user="owner1", workspace="T1")
    out = (
        await cockpit.send("/audit --user owner1 --tool members", user="owner1", workspace="T1")
    ).as_plain_text()
    assert "members" in out and "succeeded" in out


async def test_activity_counts_and_daily_limit(tmp_path) -> None:
    from bot.testing import running_bot

    async with running_bot(
        tmp_path, COCKPIT_DAILY_LIMIT_PER_USER=4, COCKPIT_RATE_LIMIT_PER_MINUTE=0
    ) as bot:
        for _ in range(3):
            assert (await bot.send("/whoami", user="owner1", workspace="T1")).ok
        table = (await bot.send("/activity", user="owner1", workspace="T1")).table
        assert table is not None and table.rows[0][:2] == ["owner1", "4"]  # /activity counts too
        limited = await bot.send("/whoami", user="owner1", workspace="T1")
        assert not limited.ok and "today's 4 commands" in limited.text
        assert limited.retry_after and limited.retry_after > 0
        assert (await bot.send("/whoami", user="other", workspace="T1")).ok  # per person
        bot.clock.advance(24 * 3600)
        assert (await bot.send("/whoami", user="owner1", workspace="T1")).ok


async def test_daily_limit_is_one_count_in_the_database_for_every_process(tmp_path) -> None:
    """Two processes (two dispatchers, each with its own memory, on one database) share one
    person's daily count; a redelivered command is not counted again; the counter equals the
    day's counted audit rows."""
    from bot.dispatcher import Dispatcher
    from bot.testing import running_bot
    from storage import activity
    from tools.errors import RateLimited

    async with running_bot(
        tmp_path, COCKPIT_DAILY_LIMIT_PER_USER=5, COCKPIT_RATE_LIMIT_PER_MINUTE=0
    ) as bot:
        worker = Dispatcher(bot.services, rate_limit_per_minute=0, daily_limit_per_user=5)
        ctx = bot.ctx(user="owner1", workspace="T1")
        for _ in range(2):
            assert (await bot.send("/whoami", user="owner1", workspace="T1")).ok
        keyed = ctx.model_copy(update={"idempotency_key": "slack:evt-1"})
        assert (await worker.run(keyed, "whoami")).ok
        assert (await worker.run(keyed, "whoami")).ok  # the redelivery: answered, not counted
        assert (await worker.run(ctx, "whoami")).ok
        assert (await bot.send("/whoami", user="owner1", workspace="T1")).ok  # the 5th
        limited = await bot.send("/whoami", user="owner1", workspace="T1")
        assert not limited.ok and "today's 5 commands" in limited.text
        assert not (await worker.run(ctx, "whoami")).ok
        with pytest.raises(RateLimited):  # peek refuses early, on the loop
            bot.cockpit.dispatcher.rate_limiter.peek(ctx)
        day = bot.clock.now().date()
        with bot.services.db.session() as s:
            counted = [
                r
                for r in audit.query(s, org_id=ctx.org_id, actor="owner1", limit=100)
                if r.outcome in activity.COUNTED_OUTCOMES
            ]
            used = activity.commands_on(s, org_id=ctx.org_id, actor="owner1", day=day)
        assert used == len(counted) == 7
        bot.clock.advance(24 * 3600)
        assert (await worker.run(ctx, "whoami")).ok


async def test_connect_verifies_the_key_before_saving(cockpit: BotHarness) -> None:
    await cockpit.send("/whoami", user="owner1", workspace="T1")
    bad = await cockpit.send("/connect runpod invalid-key-00001234", user="owner1", workspace="T1")
    assert not bad.ok and "RunPod rejected the API key (401)" in bad.text
    assert "invalid-key-00001234" not in bad.text
    listed = await cockpit.send("/credentials", user="owner1", workspace="T1")
    assert "No keys stored" in listed.text


async def test_timezone_drives_spend_periods(cockpit: BotHarness) -> None:
    await cockpit.send("/whoami", user="owner1", workspace="T1")
    bad = await cockpit.send("/timezone Mars/Olympus", user="owner1", workspace="T1")
    assert not bad.ok and "Unknown timezone" in bad.text
    refused = await cockpit.send("/timezone Asia/Tokyo", user="bob", workspace="T1")
    assert not refused.ok and "admin" in refused.text
    assert (await cockpit.send("/timezone Asia/Tokyo", user="owner1", workspace="T1")).ok
    assert cockpit.ctx(user="bob", workspace="T1").timezone == "Asia/Tokyo"
    spend = await cockpit.send("/spend this week", user="bob", workspace="T1")
    assert "Asia/Tokyo" in spend.text
