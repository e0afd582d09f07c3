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
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, Protocol
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from sqlmodel import col, select

from storage import orgs
from storage.crypto import SecretError, last4
from storage.models import Alert, AlertDelivery, AlertRoute
from tools.contract import Reply, Role, SideEffect, Table, ToolContext, ToolInput, arg, tool
from tools.errors import CockpitError, InvalidInput, NotFound
from tools.metrics import ALERTS
from tools.services import Services

log = logging.getLogger(__name__)

DEFAULT_COOLDOWN = timedelta(minutes=15)
DELIVERY_ATTEMPTS = 3
DELIVERY_BACKOFF_SECONDS = 2.0
SEVERITIES = ("info", "warning", "critical")
ROUTER_KEY = "alert_router"
RouteKind = Literal["discord_webhook", "discord_channel", "slack_channel"]

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
ROUTE_ID = re.compile(r"[0-9]{1,18}")
DISCORD_SNOWFLAKE = re.compile(r"[0-9]{17,20}")
SLACK_CHANNEL_ID = re.compile(r"[CGD][A-Z0-9]{8,20}")
SLACK_CHANNEL_MENTION = re.compile(r"<#([CGD][A-Z0-9]{8,20})(?:\|[^>]*)?>")
SLACK_CHANNEL_NAME = re.compile(r"[\w-]{1,80}")


@dataclass(frozen=True)
class AlertMessage:
    """What a sink renders: severity colours it, `resolved` turns it into an all-clear."""

    org_id: int
    key: str
    severity: str
    title: str
    details: str
    resolved: bool = False
    count: int = 1


class AlertSink(Protocol):
    async def send(self, *, target: str, message: AlertMessage) -> None:
        """Deliver or raise (CockpitError with a human message)."""


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
        cooldown. Returns whether anything was sent."""
        now = self.services.clock.now()
        with self.services.db.session() as s:
            alert = s.exec(select(Alert).where(Alert.org_id == org_id, Alert.key == key)).first()
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
            elif alert.state == "resolved":
                alert.state, alert.first_seen, alert.count, alert.resolved_at = (
                    "firing",
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
            due = (
                alert.last_sent_at is None
                or alert.count == 1
                or now - alert.last_sent_at >= self.cooldown
            )
            if due:
                alert.last_sent_at = now
            s.add(alert)
            s.flush()
            alert_id, count = alert.id, alert.count
        if not due:
            return False
        assert alert_id is not None
        message = AlertMessage(org_id, key, severity, title, details, count=count)
        await self._deliver(alert_id, message)
        return True

    async def resolve(self, *, org_id: int, key: str, details: str = "") -> bool:
        """The condition cleared: one resolve message if the alert was firing."""
        now = self.services.clock.now()
        with self.services.db.session() as s:
            alert = s.exec(select(Alert).where(Alert.org_id == org_id, Alert.key == key)).first()
            if alert is None or alert.state != "firing":
                return False
            alert.state, alert.resolved_at = "resolved", now
            s.add(alert)
            alert_id, severity, title = alert.id, alert.severity, alert.title
        assert alert_id is not None
        await self._deliver(
            alert_id,
            AlertMessage(org_id, key, severity, f"Resolved: {title}", details, resolved=True),
        )
        return True

    async def deliver_existing(self, alert: Alert) -> None:
        """Deliver an alert row created elsewhere (budget thresholds) and mark it sent."""
        assert alert.id is not None
        with self.services.db.session() as s:
            row = s.get(Alert, alert.id)
            if row is None or row.last_sent_at is not None:
                return
            row.last_sent_at = self.services.clock.now()
            s.add(row)
        await self._deliver(
            alert.id,
            AlertMessage(alert.org_id, alert.key, alert.severity, alert.title, alert.details),
        )

    async def _deliver(self, alert_id: int, message: AlertMessage) -> None:
        now = self.services.clock.now()
        with self.services.db.session() as s:
            routes = list(s.exec(select(AlertRoute).where(AlertRoute.org_id == message.org_id)))
            tz = orgs.timezone_of(s, org_id=message.org_id)
        for route in routes:
            if severity_rank(message.severity) < severity_rank(route.min_severity):
                continue
            if message.severity != "critical" and in_quiet_hours(route.quiet_hours, now, tz):
                continue
            # Each route on its own: one that cannot be read, refused or crashing is recorded
            # and logged, and the routes after it are still delivered.
            try:
                await self._deliver_one(alert_id, route, message)
            except Exception:
                log.exception("alert %s: route %s could not be processed", message.key, route.id)

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

    async def _deliver_one(self, alert_id: int, route: AlertRoute, message: AlertMessage) -> None:
        sink = self.sinks.get(route.kind)
        error: str | None = "no sink is configured for " + route.kind if sink is None else None
        attempts = 0
        target: str | None = None
        if sink is not None:
            target, error = self._target_of(route)
        if sink is not None and target is not None:
            for attempts in range(1, DELIVERY_ATTEMPTS + 1):
                try:
                    await sink.send(target=target, message=message)
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
        ALERTS.labels(sink=route.kind, outcome="failed" if error else "sent").inc()
        with self.services.db.session() as s:
            s.add(
                AlertDelivery(
                    org_id=message.org_id,
                    alert_id=alert_id,
                    route_id=route.id,
                    status="failed" if error else "sent",
                    attempts=max(attempts, 1),
                    error=error,
                    created_at=self.services.clock.now(),
                )
            )
        if error:
            log.warning("alert %s to route %s failed: %s", message.key, route.id, error)


def router_of(services: Services) -> AlertRouter:
    router = services.extras.get(ROUTER_KEY)
    if router is None:
        router = AlertRouter(services, {})
        services.extras[ROUTER_KEY] = router
    assert isinstance(router, AlertRouter)
    return router


# --- the /alerts tool ---------------------------------------------------------------------------


class AlertsInput(ToolInput):
    action: Literal["list", "add", "remove", "test"] = arg(
        "list", description="list, add, remove or test", positional=True
    )
    kind: str | None = arg(
        None, description="discord or slack (for add); route id (remove)", positional=True
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


@tool(
    name="alerts",
    input_model=AlertsInput,
    role=Role.viewer,
    side_effect=SideEffect.admin,
    group="alerts",
    description="Alert routes: list them and recent deliveries, or (admins) add a Discord "
    "webhook or Slack channel, remove one, send a test.",
    examples=(
        "/alerts",
        "/alerts add discord https://discord.com/api/webhooks/…",
        "/alerts add slack #ops --severity critical",
        "/alerts remove 2",
        "/alerts test",
    ),
)
async def alerts_tool(tc: ToolContext, args: AlertsInput) -> Reply:
    if args.action != "list" and not tc.request.role.allows(Role.admin):
        raise InvalidInput(
            f"Changing alert routes needs the admin role; you are {tc.request.role.value}."
        )
    if args.action == "add":
        return _add_route(tc, args)
    if args.action == "remove":
        return _remove_route(tc, args)
    if args.action == "test":
        sent = await router_of(tc.services).fire(
            org_id=tc.org_id,
            key=f"test:{tc.services.clock.now().isoformat()}",
            severity="critical",
            title="Test alert from AI Dev Cockpit",
            details=f"Sent by {tc.request.display_name}.",
        )
        return Reply(text="Test alert sent to every route." if sent else "Nothing was sent.")
    return _list_routes(tc)


def _add_route(tc: ToolContext, args: AlertsInput) -> Reply:
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
    now = tc.services.clock.now()
    with tc.services.db.session() as s:
        route = AlertRoute(
            org_id=tc.org_id,
            kind=kind,
            target_encrypted=tc.services.secrets.encrypt(target),
            target_label=label,
            min_severity=args.severity,
            quiet_hours=args.quiet,
            created_by=tc.request.user_id,
            created_at=now,
        )
        s.add(route)
        s.flush()
        route_id = route.id
    quiet = f", quiet {args.quiet}" if args.quiet else ""
    return Reply(
        text=f"Route #{route_id} added: {label}, {args.severity} and above{quiet}. "
        "`/alerts test` sends a test."
    )


def _remove_route(tc: ToolContext, args: AlertsInput) -> Reply:
    # ASCII digits within the id column's range: "²".isdigit() is true, and int() of 20,000
    # nines overflows the database driver.
    if not args.kind or not ROUTE_ID.fullmatch(args.kind):
        raise InvalidInput("Which route?", fix="/alerts remove <id> (ids are in /alerts)")
    with tc.services.db.session() as s:
        route = s.exec(
            select(AlertRoute).where(
                AlertRoute.org_id == tc.org_id, AlertRoute.id == int(args.kind)
            )
        ).first()
        if route is None:
            raise NotFound(f"No alert route #{args.kind} here.", fix="See /alerts.")
        for d in s.exec(select(AlertDelivery).where(AlertDelivery.route_id == route.id)):
            s.delete(d)
        s.delete(route)
    return Reply(text=f"Route #{args.kind} removed.")


def _list_routes(tc: ToolContext) -> Reply:
    with tc.services.db.session() as s:
        routes = list(s.exec(select(AlertRoute).where(AlertRoute.org_id == tc.org_id)))
        recent = list(
            s.exec(
                select(AlertDelivery, Alert)
                .join(Alert, col(Alert.id) == AlertDelivery.alert_id)
                .where(AlertDelivery.org_id == tc.org_id)
                .order_by(col(AlertDelivery.id).desc())
                .limit(10)
            )
        )
    if not routes:
        return Reply(
            text="No alert routes. An admin adds one: `/alerts add discord <webhook-url>`"
            " or `/alerts add slack #channel`."
        )
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
    if recent:
        reply.text = "Recent deliveries:\n" + "\n".join(
            f"  {d.created_at:%m-%d %H:%M} route #{d.route_id} {d.status}"
            f"{' (' + d.error + ')' if d.error else ''}: {a.title}"
            for d, a in recent
        )
    return reply
