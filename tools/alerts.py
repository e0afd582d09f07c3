"""Alert routing: an alert is (organisation, key, severity, title, details, deployment).

Alerts with the same key are grouped: the first firing is delivered, repeats within the cooldown
only update the row, and when the condition clears one resolve message goes out. The state lives
in the `alert` table, so a restart does not start a new storm. Delivery goes to the
organisation's routes (Discord webhook or bot channel, Slack channel), filtered by severity and
quiet hours, with retries; every attempt's outcome is recorded in `alertdelivery`.

Sinks (the code that talks to Discord and Slack) are injected by `bot/` so this module stays
free of surface code."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal, Protocol, runtime_checkable
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from storage import alert_state, deployments, orgs
from storage import alerts as alert_store
from storage.crypto import SecretError, last4
from storage.models import (
    Alert,
    AlertAck,
    AlertDelivery,
    AlertRoute,
    AlertState,
    DeliveryStatus,
    Deployment,
    DeploymentStatus,
)
from tools.contract import (
    Button,
    Reply,
    Role,
    SideEffect,
    Table,
    Tool,
    ToolContext,
    ToolInput,
    arg,
    parse_id,
    permission_refusal,
    previewer,
    tool,
)
from tools.errors import CockpitError, Forbidden, InvalidInput, NotFound
from tools.metrics import ALERTS
from tools.services import Services

log = logging.getLogger(__name__)

DEFAULT_COOLDOWN = timedelta(minutes=15)
DELIVERY_ATTEMPTS = 3
DELIVERY_BACKOFF_SECONDS = 2.0
SEVERITIES = ("info", "warning", "critical")
RouteKind = Literal["discord_webhook", "discord_channel", "slack_channel"]
# Alert buttons are command buttons (the surfaces' generic "run this as the clicker" path):
# each value is a command line, so a click is exactly that command typed by that person, with
# that person's role, through the dispatcher.
COMMAND_BUTTON_ACTION = "command"
SILENCE_BUTTON_HOURS = (1, 24)
MAX_SILENCE_HOURS = 24 * 7
STATUS_TOOL = "deployment_status"  # what /alerts status shows of an alert's deployment
# Which alerts offer which fix (keys are set by the sweeps in tools.monitor).
STOP_KEY_PREFIXES = ("idle:",)
ROLLBACK_KEY_PREFIXES = ("health:",)
# Deployments that run: the ones the sweeps in tools.monitor check and a fix still applies to.
LIVE_STATUSES = (
    DeploymentStatus.healthy,
    DeploymentStatus.degraded,
    DeploymentStatus.unhealthy,
    DeploymentStatus.starting,
)
GONE_STATUSES = (DeploymentStatus.stopped, DeploymentStatus.deleted, DeploymentStatus.failed)

# Where a webhook route may point: Discord's own API hosts only (ptb./canary. are the hosts the
# documented Discord testing clients hand out), `/api/webhooks/{id}/{token}`, nothing else, so a
# route can never aim the bot at a loopback, link-local or other internal address. The id and
# token shapes are those discord.py's Webhook.from_url accepts.
DISCORD_WEBHOOK_HOSTS = frozenset(
    f"{sub}{domain}"
    for sub in ("", "ptb.", "canary.")
    for domain in ("discord.com", "discordapp.com")
)
DISCORD_WEBHOOK_PATH = re.compile(r"/api/webhooks/[0-9]{17,20}/[A-Za-z0-9._-]{60,100}/?")
# A Discord channel (or any) id is a snowflake; Slack channel ids start with C (public),
# G (private/legacy) or D (DM); Slack channel names are at most 80 lowercase characters without
# spaces or punctuation other than - and _ (non-Latin letters are allowed).
DISCORD_SNOWFLAKE = re.compile(r"[0-9]{17,20}")
SLACK_CHANNEL_ID = re.compile(r"[CGD][A-Z0-9]{8,20}")
SLACK_CHANNEL_MENTION = re.compile(r"<#([CGD][A-Z0-9]{8,20})(?:\|[^>]*)?>")
SLACK_CHANNEL_NAME = re.compile(r"[\w-]{1,80}")


@dataclass(frozen=True)
class AlertMessage:
    """What a sink renders: severity colours it, `resolved` turns it into an all-clear.

    `state` is the line that says where the incident stands (firing, acknowledged by X,
    silenced until T, resolved after N min); `buttons` are its actions (command buttons: each
    value is the command a click runs as the clicker), `commands` the same as text for surfaces
    without buttons (Discord webhooks)."""

    org_id: int
    key: str
    severity: str
    title: str
    details: str
    resolved: bool = False
    count: int = 1
    alert_id: int | None = None
    state: str | None = None
    buttons: tuple[Button, ...] = ()
    repeat: bool = False

    @property
    def commands(self) -> tuple[str, ...]:
        return tuple(f"{b.label}: `{b.value}`" for b in self.buttons)


@dataclass(frozen=True)
class PostRef:
    """Where a sink put a message: a Slack channel id + ts, a Discord channel + message id."""

    channel: str
    ref: str


class AlertSink(Protocol):
    async def send(
        self, *, target: str, message: AlertMessage, reply_to: PostRef | None = None
    ) -> PostRef | None:
        """Deliver (as a reply to `reply_to` where the surface threads) or raise
        (CockpitError with a human message). Returns where the message went, if it can be
        replied to and edited later."""


@runtime_checkable
class EditableSink(AlertSink, Protocol):
    async def update(self, *, target: str, post: PostRef, message: AlertMessage) -> None:
        """Edit an earlier message to show the incident's current state."""


def severity_rank(severity: str) -> int:
    return SEVERITIES.index(severity) if severity in SEVERITIES else 0


def is_discord_webhook_url(url: str) -> bool:
    """Whether `url` is exactly `https://discord.com|discordapp.com/api/webhooks/{id}/{token}`
    (or the ptb./canary. host): no other host, port, credentials, query or fragment."""
    if not url.isascii():
        return False
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return False
    return (
        parts.scheme == "https"
        and parts.netloc.lower() in DISCORD_WEBHOOK_HOSTS
        and port is None
        and not parts.query
        and not parts.fragment
        and "?" not in url
        and "#" not in url
        and DISCORD_WEBHOOK_PATH.fullmatch(parts.path) is not None
    )


def slack_channel(target: str) -> str | None:
    """The channel to post to (`#name` or a channel id) for what a person typed (`#ops`, `ops`,
    `C0123ABCD`, `<#C0123ABCD|ops>`), or None when it is not a Slack channel."""
    target = target.strip()
    mention = SLACK_CHANNEL_MENTION.fullmatch(target)
    if mention:
        return mention.group(1)
    if SLACK_CHANNEL_ID.fullmatch(target):
        return target
    name = target.removeprefix("#")
    name = name.lower() if name.isascii() else name
    return f"#{name}" if SLACK_CHANNEL_NAME.fullmatch(name) else None


def target_problem(kind: str, target: str) -> str | None:
    """Why a stored route target must not be used (None when it is fine). Checked again at
    delivery, so a row written before these checks, or by hand, is refused there too."""
    if kind == "discord_webhook" and not is_discord_webhook_url(target):
        return "not a Discord webhook URL (https://discord.com/api/webhooks/…); remove the route"
    if kind == "discord_channel" and not DISCORD_SNOWFLAKE.fullmatch(target):
        return "not a Discord channel id; remove the route"
    if kind == "slack_channel" and slack_channel(target) is None:
        return "not a Slack channel (#name or channel id); remove the route"
    return None


def in_quiet_hours(spec: str | None, now: datetime, tz: str) -> bool:
    """`22-07` in the workspace timezone; critical alerts ignore quiet hours."""
    if not spec:
        return False
    try:
        start, end = (int(x) for x in spec.split("-", 1))
    except ValueError:
        return False
    hour = now.astimezone(ZoneInfo(tz)).hour
    return start <= hour < end if start < end else hour >= start or hour < end


class AlertRouter:
    def __init__(
        self,
        services: Services,
        sinks: dict[str, AlertSink],
        *,
        cooldown: timedelta = DEFAULT_COOLDOWN,
    ) -> None:
        self.services = services
        self.sinks = sinks
        self.cooldown = cooldown

    async def fire(
        self,
        *,
        org_id: int,
        key: str,
        severity: str,
        title: str,
        details: str = "",
        deployment_id: int | None = None,
    ) -> bool:
        """Record a firing condition; deliver unless this key was delivered within the
        cooldown, its incident is acknowledged, or the key is silenced. A repeat replies to
        the incident's first message. Returns whether anything was sent."""
        now = self.services.clock.now()

        def record(s: Session) -> tuple[AlertMessage, dict[int, PostRef], datetime] | None:
            alert = alert_store.find(s, org_id=org_id, key=key)
            if alert is None:
                alert = Alert(
                    org_id=org_id,
                    key=key,
                    severity=severity,
                    title=title,
                    details=details,
                    deployment_id=deployment_id,
                    first_seen=now,
                    last_seen=now,
                    count=0,
                )
            elif alert.state == AlertState.resolved:
                alert.state, alert.first_seen, alert.count, alert.resolved_at = (
                    AlertState.firing,
                    now,
                    0,
                    None,
                )
            alert.count += 1
            alert.last_seen, alert.severity, alert.title, alert.details = (
                now,
                severity,
                title,
                details,
            )
            if deployment_id is not None:
                alert.deployment_id = deployment_id
            s.add(alert)
            s.flush()
            # Acknowledged or silenced: counted, not sent. Both are read from the database on
            # every firing, so every worker process respects them, also after a restart.
            quiet = (
                alert_state.ack_of(s, org_id=org_id, alert=alert) is not None
                or alert_state.active_silence(s, org_id=org_id, key=key, now=now) is not None
            )
            due = not quiet and (
                alert.last_sent_at is None
                or alert.count == 1
                or now - alert.last_sent_at >= self.cooldown
            )
            if not due:
                return None
            alert.last_sent_at = now
            s.add(alert)
            return compose(s, alert, now), _post_refs(s, alert), alert.first_seen

        # One unit of work on a storage thread: the firing, its quiet check and the message.
        due = await self.services.db.run(record)
        if due is None:
            return False
        message, posts, incident_at = due
        await self._deliver(message, incident_at=incident_at, reply_to=posts)
        await self._update_posts(message, posts)
        return True

    async def resolve(self, *, org_id: int, key: str, details: str = "") -> bool:
        """The condition cleared: one resolve message (a reply to the incident's first
        message) if the alert was firing and was delivered; the first message is edited to
        say it is resolved. An incident silenced from start to end resolves quietly."""
        now = self.services.clock.now()

        def record(s: Session) -> tuple[bool, AlertMessage, dict[int, PostRef], datetime] | None:
            alert = alert_store.find(s, org_id=org_id, key=key)
            if alert is None or alert.state != AlertState.firing:
                return None
            delivered = alert.last_sent_at is not None and alert.last_sent_at >= alert.first_seen
            alert.state, alert.resolved_at = AlertState.resolved, now
            s.add(alert)
            s.flush()
            return delivered, compose(s, alert, now), _post_refs(s, alert), alert.first_seen

        found = await self.services.db.run(record)
        if found is None:
            return False
        delivered, original, posts, incident_at = found
        if not delivered:
            return False
        await self._deliver(
            replace(
                original,
                title=f"Resolved: {original.title}",
                details=details,
                state=None,
                count=1,
            ),
            incident_at=incident_at,
            reply_to=posts,
        )
        await self._update_posts(original, posts)
        return True

    async def resolve_gone(self) -> int:
        """Resolve firing alerts of deployments that are no longer running (stopped, deleted,
        failed), whoever stopped them: an idle or unhealthy deployment that is gone is no
        longer idle or unhealthy. Returns how many were resolved."""
        rows = await self.services.db.read(
            alert_store.firing_on_deployments_in_all_orgs, statuses=GONE_STATUSES
        )
        resolved = 0
        for alert, dep in rows:
            resolved += int(
                await self.resolve(
                    org_id=alert.org_id,
                    key=alert.key,
                    details=f"#{dep.id} {dep.name} is {dep.status} now.",
                )
            )
        return resolved

    async def refresh(self, *, org_id: int, alert_id: int) -> None:
        """Edit the incident's messages to show its current state (after an acknowledgement
        or a silence)."""
        now = self.services.clock.now()

        def current(s: Session) -> tuple[AlertMessage, dict[int, PostRef]] | None:
            alert = alert_state.get_alert(s, org_id=org_id, alert_id=alert_id)
            if alert is None:
                return None
            return compose(s, alert, now), _post_refs(s, alert)

        found = await self.services.db.read(current)
        if found is not None:
            await self._update_posts(*found)

    async def deliver_existing(self, alert: Alert) -> None:
        """Deliver an alert row created elsewhere (budget thresholds) and mark it sent; a
        silenced key is marked handled without a message."""
        assert alert.id is not None
        now = self.services.clock.now()
        org_id, alert_id = alert.org_id, alert.id

        def mark_sent(s: Session) -> tuple[AlertMessage, datetime] | None:
            row = alert_state.get_alert(s, org_id=org_id, alert_id=alert_id)
            if row is None or row.last_sent_at is not None:
                return None
            silence = alert_state.active_silence(s, org_id=org_id, key=row.key, now=now)
            if silence is not None:  # counted as seen, never sent
                row.last_seen = now
                s.add(row)
                return None
            row.last_sent_at = now
            s.add(row)
            s.flush()
            return compose(s, row, now), row.first_seen

        due = await self.services.db.run(mark_sent)
        if due is not None:
            message, incident_at = due
            await self._deliver(message, incident_at=incident_at, reply_to={})

    async def _deliver(
        self, message: AlertMessage, *, incident_at: datetime, reply_to: dict[int, PostRef]
    ) -> None:
        assert message.alert_id is not None
        now = self.services.clock.now()
        org_id = message.org_id

        def routes_and_timezone(s: Session) -> tuple[list[AlertRoute], str]:
            return alert_store.routes_of(s, org_id=org_id), orgs.timezone_of(s, org_id=org_id)

        routes, tz = await self.services.db.read(routes_and_timezone)
        for route in routes:
            if severity_rank(message.severity) < severity_rank(route.min_severity):
                continue
            if message.severity != "critical" and in_quiet_hours(route.quiet_hours, now, tz):
                continue
            # Each route on its own: one that cannot be read, refused or crashing is recorded
            # and logged, and the routes after it are still delivered.
            assert route.id is not None
            post = reply_to.get(route.id)
            # Where the incident already has its first message, a firing is a repeat: a short
            # reply in its thread (the buttons stay on the first message, edited to show the
            # new count). A route without one (added since, or its first delivery failed) gets
            # the whole message, buttons and all.
            one = message
            if post is not None and not message.resolved:
                one = replace(message, repeat=True, buttons=())
            try:
                await self._deliver_one(route, one, post, incident_at=incident_at, now=now)
            except Exception:
                log.exception("alert %s: route %s could not be processed", message.key, route.id)

    async def _update_posts(self, message: AlertMessage, posts: dict[int, PostRef]) -> None:
        if not posts:
            return
        listed = await self.services.db.read(alert_store.routes_of, org_id=message.org_id)
        routes = {r.id: r for r in listed}
        for route_id, post in posts.items():
            route = routes.get(route_id)
            sink = self.sinks.get(route.kind) if route is not None else None
            if route is None or not isinstance(sink, EditableSink):  # webhooks cannot edit
                continue
            target, problem = self._target_of(route)
            if target is None:
                log.warning("alert %s: route %s not updated: %s", message.key, route_id, problem)
                continue
            try:
                await sink.update(target=target, post=post, message=message)
            except Exception:  # an edit is cosmetic: log it, never fail the caller
                log.warning("alert %s: could not edit its message", message.key, exc_info=True)

    def _target_of(self, route: AlertRoute) -> tuple[str | None, str | None]:
        """(target, None), or (None, why it cannot be used)."""
        try:
            target = self.services.secrets.decrypt(route.target_encrypted)
        except SecretError:
            return None, (
                "the route's target cannot be decrypted with COCKPIT_SECRET_KEY (was the key "
                "replaced without keeping the old one?); remove and re-add the route"
            )
        problem = target_problem(route.kind, target)
        return (None, problem) if problem else (target, None)

    async def _deliver_one(
        self,
        route: AlertRoute,
        message: AlertMessage,
        reply_to: PostRef | None,
        *,
        incident_at: datetime,
        now: datetime,
    ) -> None:
        """Send to one route (with retries), then record the delivery and, for an incident's
        first message, where it was posted: one unit of work."""
        assert message.alert_id is not None
        alert_id = message.alert_id
        sink = self.sinks.get(route.kind)
        error: str | None = "no sink is configured for " + route.kind if sink is None else None
        attempts = 0
        target: str | None = None
        post: PostRef | None = None
        if sink is not None:
            target, error = self._target_of(route)
        if sink is not None and target is not None:
            for attempts in range(1, DELIVERY_ATTEMPTS + 1):
                try:
                    post = await sink.send(target=target, message=message, reply_to=reply_to)
                    error = None
                    break
                except CockpitError as exc:
                    error = exc.message
                except Exception as exc:  # a sink bug must not stop the other routes
                    log.exception("alert sink %s failed", route.kind)
                    error = f"{type(exc).__name__}"
                if attempts < DELIVERY_ATTEMPTS:
                    await self.services.clock.sleep(DELIVERY_BACKOFF_SECONDS * 2 ** (attempts - 1))
        assert route.id is not None
        route_id = route.id
        ALERTS.labels(sink=route.kind, outcome="failed" if error else "sent").inc()
        delivery = AlertDelivery(
            org_id=message.org_id,
            alert_id=alert_id,
            route_id=route_id,
            status=DeliveryStatus.failed if error else DeliveryStatus.sent,
            attempts=max(attempts, 1),
            error=error,
            created_at=self.services.clock.now(),
        )
        first_post = post if reply_to is None and not message.resolved else None

        def record(s: Session) -> None:
            s.add(delivery)
            if first_post is not None:
                alert_state.record_post(
                    s,
                    org_id=message.org_id,
                    alert_id=alert_id,
                    route_id=route_id,
                    incident_at=incident_at,
                    channel=first_post.channel,
                    ref=first_post.ref,
                    now=now,
                )

        await self.services.db.run(record)
        if error:
            log.warning("alert %s to route %s failed: %s", message.key, route.id, error)


def _post_refs(s: Session, alert: Alert) -> dict[int, PostRef]:
    return {
        p.route_id: PostRef(p.channel, p.ref)
        for p in alert_state.posts_of(s, org_id=alert.org_id, alert=alert)
    }


# --- what an alert message says and offers -------------------------------------------------------


@dataclass(frozen=True)
class Fix:
    tool: str
    label: str
    verb: str


STOP_FIX = Fix("stop_deployment", "Stop", "stop")
ROLLBACK_FIX = Fix("rollback_deployment", "Roll back", "roll back")


def fix_of(alert: Alert, dep: Deployment | None) -> Fix | None:
    """The fix an alert offers: Stop for an idle deployment that still runs,
    Roll back for a deployment whose newer revision turned unhealthy."""
    if dep is None or dep.status not in LIVE_STATUSES or alert.state != AlertState.firing:
        return None
    if alert.key.startswith(STOP_KEY_PREFIXES):
        return STOP_FIX
    if alert.key.startswith(ROLLBACK_KEY_PREFIXES) and dep.current_revision > 1:
        return ROLLBACK_FIX
    return None


def _deployment_of(s: Session, alert: Alert) -> Deployment | None:
    if alert.deployment_id is None:
        return None
    return deployments.get(s, org_id=alert.org_id, deployment_id=alert.deployment_id)


def _clock_time(moment: datetime) -> str:
    return f"{moment:%H:%M} UTC"


def _acknowledged(ack: AlertAck) -> str:
    return f"acknowledged by {ack.user_name} at {_clock_time(ack.created_at)}"


def compose(s: Session, alert: Alert, now: datetime) -> AlertMessage:
    """The alert as a sink shows it now: its state line and the buttons that still make
    sense (none once resolved; none on info messages such as the digest)."""
    assert alert.id is not None
    resolved = alert.state == AlertState.resolved
    ack = None if resolved else alert_state.ack_of(s, org_id=alert.org_id, alert=alert)
    silenced = (
        None
        if resolved
        else alert_state.active_silence(s, org_id=alert.org_id, key=alert.key, now=now)
    )
    if resolved:
        minutes = int(((alert.resolved_at or now) - alert.first_seen).total_seconds() // 60)
        state = f"✅ Resolved after {minutes} min"
    else:
        parts = []
        if ack is not None:
            parts.append(_acknowledged(ack))
        if silenced is not None:
            parts.append(
                f"silenced by {silenced.user_name} until {silenced.ends_at:%Y-%m-%d %H:%M} UTC"
            )
        joined = "; ".join(parts)
        state = (
            joined[:1].upper() + joined[1:]
            if parts
            else f"Firing since {_clock_time(alert.first_seen)}"
        )
    buttons: list[Button] = []
    if not resolved and alert.severity != "info":
        if ack is None:
            buttons.append(_command("Acknowledge", f"/alerts ack {alert.id}", "primary"))
        buttons += [
            _command(f"Silence {h} h", f"/alerts silence {alert.id} --hours {h}")
            for h in SILENCE_BUTTON_HOURS
        ]
        buttons.append(_command("Status", f"/alerts status {alert.id}"))
        dep = _deployment_of(s, alert)
        fix = fix_of(alert, dep)
        if fix is not None and dep is not None:
            buttons.append(_command(f"{fix.label} #{dep.id}", f"/fix {alert.id}", "danger"))
    return AlertMessage(
        org_id=alert.org_id,
        key=alert.key,
        severity=alert.severity,
        title=alert.title,
        details=alert.details,
        resolved=resolved,
        count=alert.count,
        alert_id=alert.id,
        state=state,
        buttons=tuple(buttons),
    )


def _command(label: str, command: str, style: str = "default") -> Button:
    return Button(label=label, action=COMMAND_BUTTON_ACTION, value=command, style=style)


def router_of(services: Services) -> AlertRouter:
    if services.alert_router is None:
        services.alert_router = AlertRouter(services, {})
    return services.alert_router


# --- the /alerts tool ---------------------------------------------------------------------------

AlertAction = Literal["list", "add", "remove", "test", "ack", "silence", "unsilence", "status"]
# Who may do what (the tool itself is open to viewers; each action checks its own role):
# acknowledging says "I am on it" and hides nothing from anyone else's view of the alert, so
# viewers may; a silence hides an alert from everyone, so members and up; routes are admin.
ACTION_ROLES: dict[str, Role] = {
    "list": Role.viewer,
    "status": Role.viewer,
    "ack": Role.viewer,
    "silence": Role.member,
    "unsilence": Role.member,
    "add": Role.admin,
    "remove": Role.admin,
    "test": Role.admin,
}


class AlertsInput(ToolInput):
    action: AlertAction = arg(
        "list",
        description="list, add, remove, test; ack, silence, status <alert id>; unsilence <id>",
        positional=True,
    )
    kind: str | None = arg(
        None,
        description="discord or slack (add); route id (remove); alert id (ack, silence, "
        "status); silence id (unsilence)",
        positional=True,
    )
    target: str | None = arg(
        None,
        description="Discord webhook URL, Slack #channel, or Discord channel id",
        positional=True,
        secret=True,
    )
    severity: Literal["info", "warning", "critical"] = arg(
        "warning", description="Lowest severity sent"
    )
    quiet: str | None = arg(
        None,
        description="Quiet hours in the workspace timezone, e.g. 22-07 "
        "(critical alerts still go out)",
        pattern=r"^\d{1,2}-\d{1,2}$",
    )
    hours: int = arg(
        1, description="How long a silence lasts, in hours", ge=1, le=MAX_SILENCE_HOURS
    )


def _alerts_effect(args: AlertsInput) -> SideEffect:
    return SideEffect.none if args.action in ("list", "status") else SideEffect.admin


@tool(
    name="alerts",
    input_model=AlertsInput,
    role=Role.viewer,
    side_effect=SideEffect.admin,
    effect=_alerts_effect,
    group="alerts",
    description="Alerts: list routes, open alerts and silences; acknowledge, silence or show "
    "an alert; (admins) add a Discord webhook or Slack channel, remove one, send a test.",
    examples=(
        "/alerts",
        "/alerts add discord https://discord.com/api/webhooks/…",
        "/alerts add slack #ops --severity critical",
        "/alerts remove 2",
        "/alerts test",
        "/alerts ack 12",
        "/alerts silence 12 --hours 24",
        "/alerts unsilence 3",
    ),
)
async def alerts_tool(tc: ToolContext, args: AlertsInput) -> Reply:
    needed = ACTION_ROLES[args.action]
    if not tc.request.role.allows(needed):
        what = "Changing alert routes" if needed is Role.admin else f"/alerts {args.action}"
        raise Forbidden(f"{what} needs the {needed.value} role; you are {tc.request.role.value}.")
    if args.action == "add":
        return await _add_route(tc, args)
    if args.action == "remove":
        return await _remove_route(tc, args)
    if args.action == "test":
        return await _test(tc)
    if args.action == "ack":
        return await _acknowledge(tc, args)
    if args.action == "silence":
        return await _silence(tc, args)
    if args.action == "unsilence":
        return await _unsilence(tc, args)
    if args.action == "status":
        return await _status(tc, args)
    return await _list_routes(tc)


async def _test(tc: ToolContext) -> Reply:
    """A critical alert to every route. It is not an incident: it closes at once, without a
    resolve message (its post is edited to say so), so it never lists as open in /alerts or
    the digest."""
    router = router_of(tc.services)
    now = tc.services.clock.now()
    key = f"test:{now.isoformat()}"
    sent = await router.fire(
        org_id=tc.org_id,
        key=key,
        severity="critical",
        title="Test alert from AI Dev Cockpit",
        details=f"Sent by {tc.request.display_name}.",
    )

    def close(s: Session) -> int | None:
        alert = alert_store.find(s, org_id=tc.org_id, key=key)
        if alert is None:
            return None
        alert.state, alert.resolved_at = AlertState.resolved, now
        s.add(alert)
        return alert.id

    alert_id = await tc.services.db.run(close)
    if alert_id is not None:
        await router.refresh(org_id=tc.org_id, alert_id=alert_id)
    return Reply(text="Test alert sent to every route." if sent else "Nothing was sent.")


async def _alert_arg(tc: ToolContext, value: str | None, action: str) -> Alert:
    """The alert a command or button names, looked up in the caller's organisation only; a
    button value is client-controlled text, so it is read like anything typed."""
    alert_id = parse_id(value)
    if alert_id is None:
        raise InvalidInput(
            f"Which alert? {action} takes an alert number.",
            fix=f"/alerts {action} <alert id> (the number is on the alert and in /alerts)",
        )
    alert = await tc.services.db.read(alert_state.get_alert, org_id=tc.org_id, alert_id=alert_id)
    if alert is None:
        raise NotFound(f"No alert #{alert_id} here.", fix="See /alerts for the open ones.")
    return alert


async def _acknowledge(tc: ToolContext, args: AlertsInput) -> Reply:
    alert = await _alert_arg(tc, args.kind, "ack")
    alert_id = alert.id
    assert alert_id is not None
    if alert.state != AlertState.firing:
        return Reply(text=f"Alert #{alert.id} is already resolved.", ephemeral=True)
    now = tc.services.clock.now()

    def acknowledge(s: Session) -> tuple[AlertAck, bool]:
        row = alert_state.get_alert(s, org_id=tc.org_id, alert_id=alert_id)
        assert row is not None
        return alert_state.acknowledge(
            s,
            org_id=tc.org_id,
            alert=row,
            user_id=tc.request.user_id,
            user_name=tc.request.display_name,
            now=now,
        )

    try:
        ack, fresh = await tc.services.db.run(acknowledge)
    except IntegrityError:  # two clicks at once (another process): the first one stands
        found = await tc.services.db.read(alert_state.ack_of, org_id=tc.org_id, alert=alert)
        assert found is not None
        ack, fresh = found, False
    if not fresh:
        return Reply(
            text=f"Alert #{alert.id} was already {_acknowledged(ack)}.",
            ephemeral=True,
        )
    await router_of(tc.services).refresh(org_id=tc.org_id, alert_id=alert_id)
    return Reply(
        text=f"Acknowledged alert #{alert.id} ({alert.title}): repeats stay quiet until it "
        "resolves.",
        ephemeral=True,
    )


async def _silence(tc: ToolContext, args: AlertsInput) -> Reply:
    alert = await _alert_arg(tc, args.kind, "silence")
    assert alert.id is not None
    now = tc.services.clock.now()
    ends = now + timedelta(hours=args.hours)
    row = await tc.services.db.run(
        alert_state.silence,
        org_id=tc.org_id,
        key=alert.key,
        title=alert.title,
        user_id=tc.request.user_id,
        user_name=tc.request.display_name,
        now=now,
        ends_at=ends,
    )
    silence_id = row.id
    await router_of(tc.services).refresh(org_id=tc.org_id, alert_id=alert.id)
    return Reply(
        text=f"Silenced {alert.title} for {args.hours} h (until {ends:%Y-%m-%d %H:%M} UTC). "
        f"Other alerts still go out. `/alerts unsilence {silence_id}` ends it early.",
        ephemeral=True,
    )


async def _unsilence(tc: ToolContext, args: AlertsInput) -> Reply:
    silence_id = parse_id(args.kind)
    if silence_id is None:
        raise InvalidInput("Which silence?", fix="/alerts unsilence <id> (ids are in /alerts)")
    row = await tc.services.db.run(
        alert_state.end_silence,
        org_id=tc.org_id,
        silence_id=silence_id,
        user_id=tc.request.user_id,
        now=tc.services.clock.now(),
    )
    if row is None:
        raise NotFound(f"No silence #{silence_id} in force here.", fix="See /alerts.")
    return Reply(text=f"Silence #{silence_id} ended: {row.title} alerts go out again.")


async def _status(tc: ToolContext, args: AlertsInput) -> Reply:
    """The alert and, when it is about a deployment, that deployment's status (the
    `deployment_status` tool, run for the caller): a private answer to whoever asked."""
    alert = await _alert_arg(tc, args.kind, "status")
    now = tc.services.clock.now()
    message = await tc.services.db.read(compose, alert, now)
    reply = Reply(title=f"Alert #{alert.id}: {alert.title}", text=alert.details)
    reply.add_field("State", message.state or alert.state)
    reply.add_field("Seen", f"{alert.count}× since {alert.first_seen:%Y-%m-%d %H:%M} UTC")
    if alert.deployment_id is not None and tc.services.registry.get(STATUS_TOOL) is not None:
        try:
            status_tool = _inner_tool(tc, STATUS_TOOL)
            dep = await status_tool.func(
                tc, status_tool.parse_args({"deployment": str(alert.deployment_id)})
            )
        except CockpitError as exc:
            reply.add_field("Deployment", exc.message)
        else:
            reply.add_field("Deployment", dep.title or f"#{alert.deployment_id}")
            reply.fields.extend(dep.fields)
    reply.ephemeral = True
    return reply


async def _add_route(tc: ToolContext, args: AlertsInput) -> Reply:
    kind_word = (args.kind or "").lower()
    target = (args.target or "").strip()
    if kind_word not in ("discord", "slack") or not target:
        raise InvalidInput(
            "Say where alerts go.",
            fix="/alerts add discord <webhook-url> or /alerts add slack #channel",
        )
    kind: RouteKind
    if kind_word == "slack":
        channel = slack_channel(target)
        if channel is None:
            raise InvalidInput(
                "That is not a Slack channel: give its name (#ops) or its id (C0123ABCD). "
                "Slack alerts are posted by the bot, not through incoming-webhook URLs.",
                fix="/alerts add slack #ops (then /invite the bot to that channel)",
            )
        kind, label = "slack_channel", channel if channel.startswith("#") else f"#{channel}"
        target = channel
    elif is_discord_webhook_url(target):
        kind, label = "discord_webhook", f"Discord webhook {last4(target)}"
    elif DISCORD_SNOWFLAKE.fullmatch(target):
        kind, label = "discord_channel", f"Discord channel {target}"
    else:
        raise InvalidInput(
            "That is not a Discord webhook URL (https://discord.com/api/webhooks/<id>/<token>) "
            "or a Discord channel id.",
            fix="Copy the webhook URL from Discord: channel settings → Integrations → Webhooks.",
        )
    route = AlertRoute(
        org_id=tc.org_id,
        kind=kind,
        target_encrypted=tc.services.secrets.encrypt(target),
        target_label=label,
        min_severity=args.severity,
        quiet_hours=args.quiet,
        created_by=tc.request.user_id,
        created_at=tc.services.clock.now(),
    )

    def add(s: Session) -> int | None:
        s.add(route)
        s.flush()
        return route.id

    route_id = await tc.services.db.run(add)
    quiet = f", quiet {args.quiet}" if args.quiet else ""
    return Reply(
        text=f"Route #{route_id} added: {label}, {args.severity} and above{quiet}. "
        "`/alerts test` sends a test."
    )


async def _remove_route(tc: ToolContext, args: AlertsInput) -> Reply:
    route_id = parse_id(args.kind)
    if route_id is None:
        raise InvalidInput("Which route?", fix="/alerts remove <id> (ids are in /alerts)")

    def remove(s: Session) -> bool:
        route = alert_store.get_route(s, org_id=tc.org_id, route_id=route_id)
        if route is None:
            return False
        alert_store.delete_route(s, org_id=tc.org_id, route=route)
        return True

    if not await tc.services.db.run(remove):
        raise NotFound(f"No alert route #{route_id} here.", fix="See /alerts.")
    return Reply(text=f"Route #{route_id} removed.")


async def _list_routes(tc: ToolContext) -> Reply:
    now = tc.services.clock.now()

    def listing(
        s: Session,
    ) -> tuple[list[AlertRoute], list[tuple[AlertDelivery, Alert]], list[str]]:
        return (
            alert_store.routes_of(s, org_id=tc.org_id),
            alert_store.recent_deliveries(s, org_id=tc.org_id, limit=10),
            alert_state_lines(s, org_id=tc.org_id, now=now),
        )

    routes, recent, state = await tc.services.db.read(listing)
    if not routes:
        reply = Reply(
            text="No alert routes. An admin adds one: `/alerts add discord <webhook-url>`"
            " or `/alerts add slack #channel`."
        )
    else:
        reply = Reply(
            title=f"{len(routes)} alert route(s)",
            table=Table(
                columns=["#", "where", "severity", "quiet hours"],
                rows=[
                    [str(r.id), r.target_label, f"{r.min_severity}+", r.quiet_hours or "-"]
                    for r in routes
                ],
            ),
        )
    parts = [reply.text] if reply.text else []
    parts += state
    if recent:
        parts.append(
            "Recent deliveries:\n"
            + "\n".join(
                f"  {d.created_at:%m-%d %H:%M} route #{d.route_id} {d.status}"
                f"{' (' + d.error + ')' if d.error else ''}: {a.title}"
                for d, a in recent
            )
        )
    reply.text = "\n\n".join(parts)
    return reply


def alert_state_lines(s: Session, *, org_id: int, now: datetime) -> list[str]:
    """Open alerts (with who acknowledged them) and silences in force (who set them, when they
    end): for /alerts and the daily digest."""
    lines: list[str] = []
    open_alerts = alert_state.open_alerts(s, org_id=org_id)
    if open_alerts:
        rows = []
        for a in open_alerts:
            ack = alert_state.ack_of(s, org_id=org_id, alert=a)
            how = (
                _acknowledged(ack)
                if ack is not None
                else f"open since {a.first_seen:%m-%d %H:%M} UTC"
            )
            rows.append(f"  #{a.id} {a.severity}: {a.title} ({how})")
        lines.append(f"Open alerts ({len(open_alerts)}):\n" + "\n".join(rows))
    silences = alert_state.active_silences(s, org_id=org_id, now=now)
    if silences:
        lines.append(
            f"Silenced ({len(silences)}):\n"
            + "\n".join(
                f"  silence #{x.id}: {x.title} [{x.key}] by {x.user_name}, ends "
                f"{x.ends_at:%Y-%m-%d %H:%M} UTC"
                for x in silences
            )
        )
    return lines


# --- /fix: an alert's fix, through the approval gate --------------------------------------------


class FixInput(ToolInput):
    alert: str = arg(description="Alert number (on the alert message)", positional=True)


async def _fix_target(tc: ToolContext, value: str) -> tuple[Alert, Deployment, Fix]:
    alert = await _alert_arg(tc, value, "fix")
    dep = await tc.services.db.read(_deployment_of, alert)
    fix = fix_of(alert, dep)
    if fix is None or dep is None:
        raise InvalidInput(
            f"Alert #{alert.id} ({alert.state}) has no fix to run now.",
            fix=f"See /alerts status {alert.id}.",
        )
    return alert, dep, fix


def _inner_tool(tc: ToolContext, name: str) -> Tool:
    """A tool this one runs for the caller (outside the dispatcher): the caller needs the
    right to run it too (role, API key scopes), checked here where it runs."""
    inner = tc.services.registry.get(name)
    if inner is None:
        raise NotFound(f"This build has no {name} tool.")
    refusal = permission_refusal(tc.request, inner)
    if refusal is not None:
        raise Forbidden(refusal[1])
    return inner


@tool(
    name="fix_alert",
    command="fix",
    input_model=FixInput,
    role=Role.member,
    side_effect=SideEffect.destroy,
    needs_approval=True,
    agent=False,
    group="alerts",
    description="Run an alert's fix (stop an idle deployment, roll back an unhealthy "
    "revision) after approval; the alert then resolves in its thread.",
    examples=("/fix 12",),
)
async def fix_alert(tc: ToolContext, args: FixInput) -> Reply:
    alert, dep, fix = await _fix_target(tc, args.alert)
    inner = _inner_tool(tc, fix.tool)
    reply: Reply = await inner.func(tc, inner.parse_args({"deployment": str(dep.id)}))
    if reply.ok:
        await router_of(tc.services).resolve(
            org_id=tc.org_id,
            key=alert.key,
            details=f"{tc.request.display_name} ran {fix.label} from the alert: {reply.text}",
        )
    return reply


@previewer(fix_alert)
async def _fix_preview(tc: ToolContext, args: FixInput) -> Reply:
    alert, dep, fix = await _fix_target(tc, args.alert)
    inner = _inner_tool(tc, fix.tool)
    preview = Reply(text=f"This will {fix.verb} #{dep.id} {dep.name}.")
    if inner.preview is not None:
        preview = await inner.preview(tc, inner.parse_args({"deployment": str(dep.id)}))
    preview.title = f"{fix.label} #{dep.id} {dep.name}?"
    preview.text = f"From alert #{alert.id}: {alert.title}.\n{preview.text}".strip()
    return preview
