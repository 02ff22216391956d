"""``flask --app wsgi orgs|users|tokens|open311 …`` and ``stations assign``: accounts from the shell.

Secrets go in on standard input (never as arguments, which end up in shell histories and
``ps``) and come out once, alone on stdout's last line, so ``… | tail -n 1`` captures them;
everything else is said on stderr.
"""
from __future__ import annotations

import sys
from datetime import timedelta

import click
from flask import current_app
from flask.cli import AppGroup, with_appcontext
from sqlalchemy.exc import SQLAlchemyError

from app.ops.accounts import DEFAULT_TIMEZONE, ROLES, WEBHOOK_FORMATS, Accounts
from app.dbtime import utcnow
from app.ops.errors import OpsError

MAX_TOKEN_DAYS = 3650

orgs_cli = AppGroup("orgs", help="Organisations that run stations.")
users_cli = AppGroup("users", help="Staff users.")
tokens_cli = AppGroup("tokens", help="Bearer tokens for the staff API.")
open311_cli = AppGroup("open311", help="Open311 GeoReport v2.")
keys_cli = AppGroup("keys", help="api_keys of Open311 client applications.")
open311_cli.add_command(keys_cli)


def _accounts() -> Accounts:
    return Accounts(current_app.extensions["yizhan_store"])


def _say(message: str) -> None:
    click.echo(message, err=True)


def _ops(call, *args, **kwargs):
    """Run an accounts call; its error becomes the command's message and a non-zero exit."""
    try:
        return call(*args, **kwargs)
    except OpsError as exc:
        raise click.ClickException(exc.message) from None


def _password_from_stdin(given: bool) -> str:
    if not given:
        raise click.ClickException(
            "give the password on standard input with --password-stdin, e.g. "
            "`printf '%s' \"$PASSWORD\" | flask --app wsgi users … --password-stdin` "
            "(passwords are never taken as arguments: they would stay in shell histories)"
        )
    raw = sys.stdin.read()
    password = raw[:-1] if raw.endswith("\n") else raw  # what `echo` adds is not part of it
    password = password[:-1] if password.endswith("\r") else password
    if not password:
        raise click.ClickException("no password on standard input")
    if "\n" in password or "\r" in password:
        raise click.ClickException("the password on standard input must be a single line")
    return password


@orgs_cli.command("create")
@click.argument("code")
@click.option("--name", required=True, help="Display name, e.g. 荷塘区环卫所.")
@click.option("--timezone", default=DEFAULT_TIMEZONE, show_default=True, help="IANA time zone of its SLA clocks.")
@click.option("--webhook-url", default=None, help="Where its notifications are sent.")
@click.option("--webhook-format", type=click.Choice(WEBHOOK_FORMATS), default="json", show_default=True,
              help="wecom: a WeCom (企业微信) group robot; json: a plain JSON webhook.")
def create_org(code, name, timezone, webhook_url, webhook_format):
    """Create an organisation; CODE is its short name (lower-case, e.g. hetang-sanitation)."""
    org = _ops(_accounts().create_organisation, code, name, timezone=timezone, webhook_url=webhook_url,
               webhook_format=webhook_format)
    click.echo(f"Created organisation {org.code} (id {org.id}, {org.timezone}).")


@orgs_cli.command("categories")
@click.argument("code")
@click.option("--set", "source", type=click.File("r", encoding="utf-8"), default=None,
              help="Replace them with this JSON file (- for standard input), as printed without options.")
@click.option("--reset", is_flag=True, help="Go back to the default categories and limits.")
def org_categories(code, source, reset):
    """Print an organisation's problem categories with their priorities and SLA limits as JSON,
    or replace them (--set FILE) or restore the defaults (--reset). Every problem in a file is
    reported at once and nothing is changed unless the whole list is valid."""
    import json

    from app.ops.categories import category_to_dict

    if source is not None and reset:
        raise click.UsageError("give --set or --reset, not both")
    accounts = _accounts()
    if source is not None or reset:
        try:
            items = json.load(source) if source is not None else None
        except json.JSONDecodeError as exc:
            raise click.ClickException(f"not JSON: {exc}") from None
        org = _ops(accounts.set_categories, code, items)
        _say(f"{org.code}: {len(org.categories)} categories now in force.")
    else:
        org = accounts.organisation_by_code(code)
        if org is None:
            raise click.ClickException(f"no organisation {code!r}")
    click.echo(json.dumps([category_to_dict(c) for c in org.categories], ensure_ascii=False, indent=2))


@users_cli.command("create")
@click.argument("email")
@click.option("--role", type=click.Choice(ROLES), required=True)
@click.option("--org", "org_code", default=None, help="Organisation code (every role but admin needs one).")
@click.option("--webhook-url", default=None, help="The user's own notification webhook (default: the organisation's).")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input (required).")
def create_user(email, role, org_code, webhook_url, password_stdin):
    """Create a staff user."""
    password = _password_from_stdin(password_stdin)
    user = _ops(_accounts().create_user, email, password, role, org_code=org_code, webhook_url=webhook_url)
    click.echo(f"Created {user.role} {user.email} (id {user.id}).")


@users_cli.command("set-password")
@click.argument("email")
@click.option("--password-stdin", is_flag=True, help="Read the new password from standard input (required).")
def set_password(email, password_stdin):
    """Give a staff user a new password."""
    _ops(_accounts().set_password, email, _password_from_stdin(password_stdin))
    click.echo(f"Password of {email.strip().lower()} changed.")


@users_cli.command("deactivate")
@click.argument("email")
def deactivate_user(email):
    """Stop a staff user: no login; their sessions and tokens stop working at once."""
    _ops(_accounts().set_active, email, False)
    click.echo(f"{email.strip().lower()} deactivated.")


@tokens_cli.command("create")
@click.argument("email")
@click.option("--expires-days", type=click.IntRange(1, MAX_TOKEN_DAYS), default=None,
              help="Valid for this many days (default: until revoked).")
def create_token(email, expires_days):
    """Make a bearer token for a staff user; it is printed once, alone on the last line."""
    expires_at = utcnow() + timedelta(days=expires_days) if expires_days else None
    token = _ops(_accounts().create_token, email, expires_at=expires_at)
    until = f"until {expires_at:%Y-%m-%d %H:%M} UTC" if expires_at else "until revoked"
    _say(f"Bearer token for {email.strip().lower()}, valid {until}. It is shown only now; "
         "send it as `Authorization: Bearer <token>`:")
    click.echo(token)


@tokens_cli.command("revoke")
@click.argument("token")
def revoke_token(token):
    """Revoke a bearer token at once."""
    if not _accounts().revoke_token(token.strip()):
        raise click.ClickException("no such live token (unknown, or already revoked)")
    click.echo("Token revoked.")


@keys_cli.command("create")
@click.argument("name")
def create_open311_key(name):
    """Issue an api_key to an Open311 client application; printed once, alone on the last line."""
    key = _ops(_accounts().create_open311_key, name)
    _say(f"api_key for {name.strip()}. It is shown only now:")
    click.echo(key)


@keys_cli.command("revoke")
@click.argument("key")
def revoke_open311_key(key):
    """Revoke an Open311 api_key at once."""
    if not _accounts().revoke_open311_key(key.strip()):
        raise click.ClickException("no such live api_key (unknown, or already revoked)")
    click.echo("api_key revoked.")


@click.command("assign")
@click.option("--org", "org_code", required=True, help="Code of the organisation that will run them.")
@click.option("--source", default=None, help="Their data source (without SOURCE_IDs: every station of it).")
@click.option("--manager", "manager_email", default=None,
              help="E-mail of their manager (站长): a station_manager or org_manager of that organisation.")
@click.argument("source_ids", nargs=-1)
@with_appcontext  # made apart from its group (app/cli.py's ``stations``), so not wrapped by it
def assign_stations(org_code, source, manager_email, source_ids):
    """Give stations to an organisation, and optionally a manager (all or nothing)."""
    count = _ops(_accounts().assign_stations, org_code, source=source, source_ids=source_ids,
                 manager_email=manager_email)
    managed = f", managed by {manager_email.strip().lower()}" if manager_email else ""
    click.echo(f"Assigned {count:,} station(s) to {org_code}{managed}.")


def add_station_commands(stations_group) -> None:
    """``stations assign`` joins the existing ``stations`` group (app/cli.py)."""
    stations_group.add_command(assign_stations)


def register(app) -> None:
    for group in (orgs_cli, users_cli, tokens_cli, open311_cli, ops_cli, feeds_cli, sensors_cli):
        app.cli.add_command(group)


# -- operators' live feeds ---------------------------------------------------------------

feeds_cli = AppGroup("feeds", help="Operators' live GBFS feeds that Yizhan polls.")


def _poller():
    from app.ops.feeds import FeedPoller

    return FeedPoller(current_app.extensions["yizhan_store"], _accounts())


@orgs_cli.command("feed")
@click.argument("code")
@click.option("--url", default=None, help="The operator's gbfs.json (http or https).")
@click.option("--off", is_flag=True, help="Stop polling this operator.")
def org_feed(code, url, off):
    """Poll organisation CODE's published GBFS feed (gbfs.json -> station_status.json) at its ttl."""
    if off == (url is not None):
        raise click.ClickException("give --url URL, or --off")
    _ops(_poller().set_feed, code, None if off else url, utcnow())
    click.echo(f"{code}: " + ("no longer polled." if off else f"polling {url} (first poll now)."))


@feeds_cli.command("poll")
@click.option("--once", is_flag=True, help="Poll the feeds that are due once, then stop.")
@click.option("--now", "now_text", default=None, help="With --once: as if it were this ISO 8601 time.")
def poll_feeds(once, now_text):
    """Poll every configured operator feed when it is due (at its ttl; backing off after errors).

    Runs until stopped (`make run` starts it beside the app); each poll is logged on stderr and its
    applied / ignored / rejected counts are kept with the feed.
    """
    import logging
    import time

    poller = _poller()  # its lines: app.logs' JSON on stderr
    while True:
        now = _instant(now_text) if once else utcnow()
        try:
            for result in poller.poll_due(now):
                click.echo(f"{result.code}: " + (f"{result.applied} applied, {result.ignored} ignored, "
                                                 f"{result.rejected} rejected" if result.ok else
                                                 f"failed ({result.error})"), err=True)
            upcoming = [f.next_poll_at for f in poller.feeds()]
        except SQLAlchemyError as exc:  # the database is away: the feeds wait for it, the poller stays
            if once:
                raise
            logging.getLogger("yizhan.feeds").error("database unavailable (%s); trying again in 30 s",
                                                    type(exc).__name__)
            time.sleep(30)
            continue
        if once:
            return
        wait = min([(t - utcnow()).total_seconds() for t in upcoming] + [5.0])  # new feeds: seen within 5 s
        time.sleep(max(wait, 0.5))


# -- the operations jobs ---------------------------------------------------------------

ops_cli = AppGroup("ops", help="Operations jobs: SLA clocks and notifications, purging, demo data.")


def _service():
    return current_app.extensions["yizhan_ops"]


def _instant(value: str | None):
    """An ISO 8601 time with its offset, for --now (tests and replays move the clock)."""
    if value is None:
        return utcnow()
    from datetime import datetime

    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 time (e.g. 2026-11-27T09:30:00+08:00)") from None
    if parsed.tzinfo is None:
        raise click.BadParameter("give the time with its offset (e.g. +08:00 or Z)")
    return parsed


@ops_cli.command("tick")
@click.option("--now", "now_text", default=None, help="Run as if it were this ISO 8601 time (default: now).")
@click.option("--no-deliver", is_flag=True, help="Mark breaches but send no notifications this time.")
def tick(now_text, no_deliver):
    """Mark SLA breaches and escalate them, end expired closures, send due notifications.

    Run it every minute (cron or a systemd timer; `make run` runs it for you). Each breach is
    escalated once however often it runs.
    """
    result = _service().tick(_instant(now_text), deliver=not no_deliver)
    click.echo(
        f"breaches: {len(result.response_breaches)} response, {len(result.resolution_breaches)} resolution; "
        f"escalations queued: {result.escalations}; closures ended: {len(result.reopened_stations)}; "
        f"notifications sent: {result.delivered}, failed (will retry): {result.failed}; "
        f"sensors gone silent: {len(result.sensors_offline)}")


@ops_cli.command("purge")
@click.option("--older-than-days", type=click.IntRange(1, 3650), default=None,
              help="Default: YIZHAN_PURGE_AFTER_DAYS (30).")
@click.option("--now", "now_text", default=None, help="Run as if it were this ISO 8601 time.")
def purge(older_than_days, now_text):
    """Erase reporters' phone numbers, e-mail addresses and device ids on work orders fixed or
    closed longer ago than the retention time (the reports themselves stay), and forget the
    notifications delivered before then."""
    days = older_than_days or current_app.config["YIZHAN_PURGE_AFTER_DAYS"]
    now = _instant(now_text)
    count = _service().purge(timedelta(days=days), now)
    sent = _service().prune_notifications(timedelta(days=days), now)
    click.echo(f"Erased the contact details of {count:,} report(s) closed more than {days} day(s) ago; "
               f"forgot {sent:,} notification(s) delivered before then.")


@ops_cli.command("demo")
def demo():
    """DEMO ONLY: an organisation running the demo stations, its staff and a few reports.

    Prints the demo logins, with new random passwords each run. Never run this on a real deployment.
    """
    from app.ops.demo import load_demo

    logins = _ops(load_demo, _service())
    click.echo("=" * 72)
    click.echo("  演示账号 DEMO LOGINS — demo data only, never on a real deployment")
    for login in logins:
        click.echo(f"  {login.email:<32} {login.password:<18} {login.who}")  # CJK last: it would misalign
    click.echo("  Staff pages: /staff/   (passwords change each time `make run` starts)")
    click.echo("=" * 72)


# -- sensors (app.ops.sensors) ------------------------------------------------------------

sensors_cli = AppGroup("sensors", help="People counters and gas sensors: devices, cleaning rules, the MQTT listener.")


def _sensors():
    from app.ops.sensors import Sensors

    return Sensors(_service())


def _say_rule(rule) -> None:
    from app.ops.sensors import GRADES

    limits = ", ".join(f"{gas} ≤ {value:g} mg/m³" for gas, value in rule.limits.items())
    click.echo(f"station {rule.station_id}: cleaning after {rule.visitor_threshold} visitors "
               f"({rule.visitors_since_cleaning} so far); grade {rule.grade} "
               f"({GRADES[rule.grade]['names']['zh-CN']}: {limits}); offline after {rule.offline_after_s} s silent")


@sensors_cli.command("register")
@click.argument("device_id")
@click.option("--station", "station_id", type=click.IntRange(0, None), required=True, help="The station's id.")
@click.option("--threshold", type=click.IntRange(1, 100_000), default=None,
              help="Visitors between cleanings at that station (default: its rule's, else 100).")
def register_device(device_id, station_id, threshold):
    """Register a device and bind it to a station; its token is printed alone on the last line
    (only its hash is kept: it cannot be shown again)."""
    token = _ops(_sensors().register, device_id, station_id, threshold)
    _say(f"Registered {device_id} at station {station_id}; it publishes to yizhan/sensors/{device_id}/reading "
         "or POSTs to /api/v1/sensors/{device_id}/readings with this token:")
    click.echo(token)


@sensors_cli.command("rule")
@click.argument("station_id", type=click.IntRange(0, None))
@click.option("--threshold", type=int, default=None, help="Visitors between cleanings.")
@click.option("--grade", default=None, help="Toilet grade for the gas limits: class1, class2 or class3.")
@click.option("--offline-after", "offline_after_s", type=int, default=None,
              help="Seconds a device may stay silent before it is reported offline.")
def station_rule(station_id, threshold, grade, offline_after_s):
    """Show a station's cleaning rule, or change it with the options."""
    if threshold is None and grade is None and offline_after_s is None:
        _say_rule(_ops(_sensors().rule, station_id))
        return
    _say_rule(_ops(_sensors().set_rule, station_id, threshold=threshold, grade=grade,
                   offline_after_s=offline_after_s))


@sensors_cli.command("listen")
@click.option("--broker", default="mqtt://127.0.0.1:1883", show_default=True,
              help="mqtt[s]://[user@]host[:port]; the password from YIZHAN_MQTT_PASSWORD, a CA bundle for "
                   "mqtts from YIZHAN_MQTT_CA")
@click.option("--client-id", default="yizhan-sensors", show_default=True,
              help="The broker keeps this client's session (and the readings that arrive while it is away).")
def listen(broker, client_id):
    """Apply readings from MQTT (yizhan/sensors/+/reading) until SIGTERM or Ctrl-C."""
    import signal

    from app.metrics import listener_heartbeat
    from app.ops.sensor_listener import Listener, broker_address

    try:
        broker_address(broker)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--broker") from None
    heartbeat = listener_heartbeat(current_app.config.get("REDIS_URL"), client_id)  # for /metrics
    listener = Listener(_service(), broker, client_id, heartbeat=heartbeat)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: listener.stop())
    listener.run()
