"""`cockpit doctor`: what is configured, what is real, what is sandbox, and what is reachable."""

from __future__ import annotations

import click

from bot.settings import Settings


def _line(ok: bool | None, label: str, detail: str) -> None:
    mark = {True: "ok  ", False: "FAIL", None: "--  "}[ok]
    click.echo(f"[{mark}] {label}: {detail}")


async def run_doctor(settings: Settings) -> int:
    from sqlalchemy.engine import make_url

    from storage.db import Database

    failures = 0
    url = settings.effective_database_url
    try:
        db = Database(url)
        current, head = db.current_revision(), db.head_revision()
        state = (
            "current"
            if current == head
            else f"at {current or 'empty'}, head {head}: run `cockpit db upgrade`"
        )
        _line(
            True, "database", f"{make_url(db.url).render_as_string(hide_password=True)} ({state})"
        )
        db.dispose()
    except Exception as exc:
        failures += 1
        _line(
            False,
            "database",
            f"cannot connect ({type(exc).__name__}). Check DATABASE_URL and that the server runs.",
        )
    key_note = (
        "set"
        if settings.secret_key
        else f"generated into {settings.data_dir}/secret.key (set COCKPIT_SECRET_KEY in production)"
    )
    _line(True, "secret key", key_note)
    if settings.use_sandbox:
        _line(
            None,
            "GPU cloud",
            "SANDBOX — local RunPod emulator, no real GPUs or charges. "
            "Set RUNPOD_API_KEY for RunPod.",
        )
    else:
        _line(True, "GPU cloud", f"RunPod REST v2 at {settings.runpod_api_url} (key set)")
    _line(
        None if not settings.anthropic_api_key else True,
        "agent",
        f"Claude ({settings.agent_model})"
        if settings.anthropic_api_key
        else "limited mode (offline intent matcher); set ANTHROPIC_API_KEY for Claude",
    )
    _line(
        None if not settings.hf_token else True,
        "Hugging Face",
        "token set"
        if settings.hf_token
        else "no token: public models only (gated ones need HF_TOKEN or /connect huggingface)",
    )
    slack = (
        "Socket Mode"
        if settings.slack_socket_mode
        else "HTTP mode"
        if settings.slack_http_mode
        else "not configured"
    )
    _line(None if slack == "not configured" else True, "Slack", slack)
    _line(
        None if not settings.discord_enabled else True,
        "Discord",
        "bot token set" if settings.discord_enabled else "not configured",
    )
    _line(True, "console", "available (`cockpit console`)")
    return 1 if failures else 0
