"""Organisations, workspaces and members. A workspace (Slack team, Discord guild, console)
belongs to exactly one organisation; members are per organisation and platform identity."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, col, select

from storage.models import Member, Organization, Workspace


def ensure_workspace(
    s: Session,
    *,
    platform: str,
    external_id: str,
    name: str,
    now: datetime,
    timezone: str = "UTC",
) -> Workspace:
    """Find the workspace for a platform id, creating it (and its organisation) on first sight."""
    ws = s.exec(
        select(Workspace).where(
            Workspace.platform == platform, Workspace.external_id == external_id
        )
    ).first()
    if ws:
        return ws
    org = Organization(name=name, created_at=now)
    s.add(org)
    s.flush()
    assert org.id is not None
    ws = Workspace(
        org_id=org.id,
        platform=platform,
        external_id=external_id,
        name=name,
        timezone=timezone,
        created_at=now,
    )
    s.add(ws)
    s.flush()
    return ws


def find_workspace(s: Session, *, platform: str, external_id: str) -> Workspace | None:
    """The workspace for a platform id, or None (a read: nothing is created)."""
    return s.exec(
        select(Workspace).where(
            Workspace.platform == platform, Workspace.external_id == external_id
        )
    ).first()


def get_workspace(s: Session, *, org_id: int, workspace_id: int) -> Workspace | None:
    return s.exec(
        select(Workspace).where(Workspace.id == workspace_id, Workspace.org_id == org_id)
    ).first()


def get_organization(s: Session, *, org_id: int) -> Organization | None:
    return s.get(Organization, org_id)


def set_timezone(s: Session, *, org_id: int, workspace_id: int, timezone: str) -> None:
    ws = get_workspace(s, org_id=org_id, workspace_id=workspace_id)
    if ws:
        ws.timezone = timezone
        s.add(ws)


def timezone_of(s: Session, *, org_id: int) -> str:
    """The organisation's timezone for schedules and alerts: its first workspace's, else UTC."""
    tz = s.exec(
        select(Workspace.timezone).where(Workspace.org_id == org_id).order_by(col(Workspace.id))
    ).first()
    return tz or "UTC"


def find_identity(
    s: Session, *, platform: str, external_id: str, platform_user_id: str
) -> tuple[Workspace, Member] | None:
    """The workspace and the member for a platform identity in one query (None when either
    is new): the per-command look-up of a known person."""
    row = s.exec(
        select(Workspace, Member)
        .join(Member, col(Member.org_id) == col(Workspace.org_id))
        .where(
            Workspace.platform == platform,
            Workspace.external_id == external_id,
            Member.platform == platform,
            Member.platform_user_id == platform_user_id,
        )
    ).first()
    return (row[0], row[1]) if row is not None else None


def get_member(s: Session, *, org_id: int, platform: str, platform_user_id: str) -> Member | None:
    return s.exec(
        select(Member).where(
            Member.org_id == org_id,
            Member.platform == platform,
            Member.platform_user_id == platform_user_id,
        )
    ).first()


def count_members(s: Session, *, org_id: int) -> int:
    return len(s.exec(select(Member.id).where(Member.org_id == org_id)).all())


def add_member(
    s: Session,
    *,
    org_id: int,
    platform: str,
    platform_user_id: str,
    display_name: str,
    role: str,
    now: datetime,
) -> Member:
    m = Member(
        org_id=org_id,
        platform=platform,
        platform_user_id=platform_user_id,
        display_name=display_name,
        role=role,
        created_at=now,
    )
    s.add(m)
    s.flush()
    return m


def list_members(s: Session, *, org_id: int) -> list[Member]:
    return list(s.exec(select(Member).where(Member.org_id == org_id).order_by(col(Member.id))))


def set_role(s: Session, *, org_id: int, member_id: int, role: str) -> Member | None:
    m = s.exec(select(Member).where(Member.id == member_id, Member.org_id == org_id)).first()
    if m:
        m.role = role
        s.add(m)
    return m


def remove_member(s: Session, *, org_id: int, member_id: int) -> bool:
    m = s.exec(select(Member).where(Member.id == member_id, Member.org_id == org_id)).first()
    if m is None:
        return False
    s.delete(m)
    return True


def find_member(s: Session, *, org_id: int, ref: str) -> Member | None:
    """A member by platform user id (`U123`, `<@U123>`) or display name (`@alice`, `alice`)."""
    ref = ref.strip()
    if ref.startswith("<@") and ref.endswith(">"):
        ref = ref[2:-1].split("|", 1)[0]
    ref = ref.lstrip("@")
    by_id = s.exec(
        select(Member).where(Member.org_id == org_id, Member.platform_user_id == ref)
    ).first()
    if by_id:
        return by_id
    return s.exec(select(Member).where(Member.org_id == org_id, Member.display_name == ref)).first()


def count_owners(s: Session, *, org_id: int) -> int:
    return len(
        s.exec(select(Member.id).where(Member.org_id == org_id, Member.role == "owner")).all()
    )


def workspaces_of(s: Session, *, org_id: int) -> list[Workspace]:
    return list(s.exec(select(Workspace).where(Workspace.org_id == org_id)))


def move_workspace(s: Session, *, from_org_id: int, to_org_id: int, workspace_id: int) -> None:
    """Re-home a workspace (and its members) into another organisation. Only for an
    organisation that holds nothing else — the caller checks that."""
    ws = get_workspace(s, org_id=from_org_id, workspace_id=workspace_id)
    if ws is None:
        raise LookupError("workspace not in the source organisation")
    ws.org_id = to_org_id
    s.add(ws)
    for m in list_members(s, org_id=from_org_id):
        s.delete(m)
    s.flush()


def idle_stop_minutes_by_org(s: Session) -> dict[int, int]:
    """Each organisation's idle auto-stop policy in minutes (the idle sweep)."""
    return {o.id: o.idle_stop_minutes for o in s.exec(select(Organization)) if o.id is not None}
