"""Storage on both engines: migrations, isolation between organisations, secrets at rest, money."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from cryptography.fernet import Fernet
from sqlalchemy import func, text
from sqlmodel import select

from storage import activity, approvals, audit, cache, credentials, events, orgs
from storage.crypto import SecretBox
from storage.db import Database
from storage.models import LedgerEntry

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
EXPECTED_TABLES = {
    "organization",
    "workspace",
    "member",
    "invite",
    "credential",
    "apikey",
    "deployment",
    "deploymentrevision",
    "ledgerentry",
    "budget",
    "alertroute",
    "alert",
    "alertdelivery",
    "auditevent",
    "processedevent",
    "conversation",
    "conversationmessage",
    "approval",
    "cacheentry",
    "schedulerlease",
}


def _two_orgs(db: Database) -> tuple[int, int]:
    with db.session() as s:
        a = orgs.ensure_workspace(s, platform="slack", external_id="TA", name="A", now=NOW)
        b = orgs.ensure_workspace(s, platform="discord", external_id="GB", name="B", now=NOW)
        return a.org_id, b.org_id


def test_migrations_apply_from_empty_and_are_current(database: Database) -> None:
    assert set(database.table_names()) >= EXPECTED_TABLES
    assert database.is_current()
    database.upgrade()  # idempotent
    assert database.is_current()


def test_workspace_lookup_is_stable(database: Database) -> None:
    with database.session() as s:
        first = orgs.ensure_workspace(s, platform="slack", external_id="T1", name="acme", now=NOW)
    with database.session() as s:
        again = orgs.ensure_workspace(s, platform="slack", external_id="T1", name="acme", now=NOW)
    assert first.id == again.id and first.org_id == again.org_id


def test_organisations_cannot_read_each_other(database: Database) -> None:
    org_a, org_b = _two_orgs(database)
    box = SecretBox([Fernet.generate_key().decode()])
    with database.session() as s:
        ws_a = s.exec(text("select id from workspace where org_id = :o").bindparams(o=org_a)).one()[
            0
        ]
        orgs.add_member(
            s,
            org_id=org_a,
            platform="slack",
            platform_user_id="U1",
            display_name="alice",
            role="owner",
            now=NOW,
        )
        credentials.put(
            s,
            org_id=org_a,
            provider="runpod",
            secret="rpa_AAAAAAAAAAAA",
            box=box,
            actor="U1",
            now=NOW,
        )
        ap = approvals.create(
            s,
            org_id=org_a,
            workspace_id=ws_a,
            tool="deploy_model",
            args_json="{}",
            request_json="{}",
            summary="x",
            requester="U1",
            expires_at=NOW + timedelta(minutes=10),
            now=NOW,
        )
        audit.record(
            s,
            org_id=org_a,
            workspace_id=ws_a,
            actor="U1",
            actor_role="owner",
            platform="slack",
            tool="whoami",
            outcome="allowed",
            args={},
            detail="",
            request_id="r1",
            now=NOW,
        )
        events.claim(s, org_id=org_a, key="evt-1", now=NOW)
    with database.session() as s:
        assert orgs.get_workspace(s, org_id=org_b, workspace_id=ws_a) is None
        assert orgs.get_member(s, org_id=org_b, platform="slack", platform_user_id="U1") is None
        assert orgs.list_members(s, org_id=org_b) == []
        assert credentials.get_secret(s, org_id=org_b, provider="runpod", box=box) is None
        assert credentials.list_for(s, org_id=org_b) == []
        assert not credentials.delete(s, org_id=org_b, provider="runpod")
        assert approvals.get(s, org_id=org_b, approval_id=ap.id) is None  # type: ignore[arg-type]
        assert not approvals.claim(s, org_id=org_b, approval_id=ap.id, decided_by="x", now=NOW)  # type: ignore[arg-type]
        assert approvals.list_pending(s, org_id=org_b, now=NOW) == []
        assert audit.query(s, org_id=org_b) == []
        assert events.seen(s, org_id=org_b, key="evt-1") is None
        assert orgs.set_role(s, org_id=org_b, member_id=1, role="owner") is None
        # ...while org A sees its own rows
        assert (
            credentials.get_secret(s, org_id=org_a, provider="runpod", box=box)
            == "rpa_AAAAAAAAAAAA"
        )
        assert len(audit.query(s, org_id=org_a)) == 1
    # The same idempotency key in another organisation is a different event.
    with database.session() as s:
        assert events.claim(s, org_id=org_b, key="evt-1", now=NOW)
        assert not events.claim(s, org_id=org_a, key="evt-1", now=NOW)


def test_credentials_are_encrypted_at_rest_and_rotate(database: Database) -> None:
    org_a, _ = _two_orgs(database)
    old_key, new_key = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    secret = "rpa_PLAINTEXTSHOULDNEVERBESTORED"
    with database.session() as s:
        cred = credentials.put(
            s,
            org_id=org_a,
            provider="runpod",
            secret=secret,
            box=SecretBox([old_key]),
            actor="U1",
            now=NOW,
        )
        assert cred.last4 == "…ORED"
    with database.engine.connect() as conn:
        raw = " ".join(
            str(v) for row in conn.execute(text("select * from credential")) for v in row
        )
    assert secret not in raw and "PLAINTEXT" not in raw
    rotated = SecretBox([new_key, old_key])
    with database.session() as s:
        assert credentials.get_secret(s, org_id=org_a, provider="runpod", box=rotated) == secret


def test_approval_claim_is_single_use_and_respects_expiry(database: Database) -> None:
    org_a, _ = _two_orgs(database)
    with database.session() as s:
        ap = approvals.create(
            s,
            org_id=org_a,
            workspace_id=None,
            tool="t",
            args_json="{}",
            request_json="{}",
            summary="",
            requester="U1",
            expires_at=NOW + timedelta(minutes=10),
            now=NOW,
        )
        late = approvals.create(
            s,
            org_id=org_a,
            workspace_id=None,
            tool="t",
            args_json="{}",
            request_json="{}",
            summary="",
            requester="U1",
            expires_at=NOW + timedelta(minutes=1),
            now=NOW,
        )
    assert ap.id and late.id
    with database.session() as s:
        assert approvals.claim(s, org_id=org_a, approval_id=ap.id, decided_by="U1", now=NOW)
    with database.session() as s:
        assert not approvals.claim(s, org_id=org_a, approval_id=ap.id, decided_by="U1", now=NOW)
        later = NOW + timedelta(minutes=2)
        assert not approvals.claim(s, org_id=org_a, approval_id=late.id, decided_by="U1", now=later)
        assert approvals.expire_due(s, org_id=org_a, now=later) == 1


def test_money_is_exact_decimal(database: Database) -> None:
    org_a, _ = _two_orgs(database)
    amounts = [Decimal("0.000306"), Decimal("0.1"), Decimal("0.2"), Decimal("1234.567891")]
    with database.session() as s:
        for amount in amounts:
            s.add(
                LedgerEntry(
                    org_id=org_a,
                    kind="gpu",
                    period_start=NOW,
                    period_end=NOW,
                    amount=amount,
                    created_at=NOW,
                )
            )
    with database.session() as s:
        rows = s.exec(select(LedgerEntry).where(LedgerEntry.org_id == org_a)).all()
        assert sorted(r.amount for r in rows) == sorted(amounts)
        total = s.exec(
            select(func.sum(LedgerEntry.amount)).where(LedgerEntry.org_id == org_a)
        ).one()
        assert total == sum(amounts)  # SUM keeps the Money type: exact Decimal


def test_daily_counts_per_person_and_the_claim_counted_once(database: Database) -> None:
    org_a, org_b = _two_orgs(database)
    day = NOW.date()
    with database.session() as s:
        assert activity.count_command(s, org_id=org_a, actor="u", day=day) == 1
        assert activity.count_command(s, org_id=org_a, actor="u", day=day) == 2
        assert activity.count_command(s, org_id=org_b, actor="u", day=day) == 1
        claimed = [
            activity.claim_and_count(s, org_id=org_a, actor="u", day=day, key=k, now=NOW)
            for k in ("slack:e1", "slack:e1", "slack:e2")
        ]
        assert claimed == [3, None, 4]  # the second delivery of e1 is not counted
        assert activity.count_command(s, org_id=org_a, actor="u", day=day, by=-1) == 3
    with database.session() as s:
        assert activity.commands_on(s, org_id=org_a, actor="u", day=day) == 3
        assert activity.commands_on(s, org_id=org_b, actor="u", day=day) == 1
        assert activity.commands_on(s, org_id=org_a, actor="u", day=day + timedelta(1)) == 0
        assert events.seen(s, org_id=org_a, key="slack:e1") is not None
        assert events.seen(s, org_id=org_b, key="slack:e1") is None


def test_cache_ttl(database: Database) -> None:
    with database.session() as s:
        cache.put(s, key="hf:model:x", value={"a": 1}, ttl_seconds=60, now=NOW)
    with database.session() as s:
        assert cache.get(s, key="hf:model:x", now=NOW + timedelta(seconds=30)) == {"a": 1}
        assert cache.get(s, key="hf:model:x", now=NOW + timedelta(seconds=61)) is None


def test_migrations_match_the_models(database: Database) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext
    from sqlmodel import SQLModel

    with database.engine.connect() as conn:
        drift = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    assert drift == []
