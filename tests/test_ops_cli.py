"""The operations commands: `ops tick`, `ops purge`, `ops demo` and `orgs categories`, on both stores."""
from __future__ import annotations

import json
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import text

from app.ops.service import ReportInput
from tests.helpers import station

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai"))


def _owned_station(store, ops):
    store.upsert([station("c1", 27.83, 113.15, source="cli")])
    ops.accounts.create_organisation("cli-org", "CLI unit", webhook_url="http://127.0.0.1:9/hook")
    ops.accounts.create_user("boss@cli.example", "long enough pw", "org_manager", "cli-org")
    ops.accounts.assign_stations("cli-org", "cli")
    with store.reading() as conn:
        return conn.execute(text("SELECT id FROM station WHERE source = 'cli'")).scalar()


def test_tick_with_a_test_clock_marks_the_breach_once(cli, store, ops):
    sid = _owned_station(store, ops)
    wo_id = ops.submit_report(ReportInput(category="no_water", station_id=sid), T0).work_order_id
    early = cli.invoke(args=["ops", "tick", "--no-deliver", "--now", (T0 + timedelta(minutes=19)).isoformat()])
    assert early.exit_code == 0 and "breaches: 0 response" in early.output
    late = cli.invoke(args=["ops", "tick", "--no-deliver", "--now", (T0 + timedelta(minutes=21)).isoformat()])
    assert late.exit_code == 0 and "breaches: 1 response" in late.output and "escalations queued: 1" in late.output
    assert ops.store.work_order(wo_id).response_breached_at == T0 + timedelta(minutes=21)
    bad = cli.invoke(args=["ops", "tick", "--now", "2026-11-23 09:00"])  # no offset
    assert bad.exit_code != 0 and "offset" in bad.output


def test_purge_uses_the_retention_time(cli, store, ops):
    sid = _owned_station(store, ops)
    boss = ops.accounts.user_by_email("boss@cli.example")
    wo_id = ops.submit_report(ReportInput(category="dirty", station_id=sid, phone="13800000000"), T0).work_order_id
    ops.transition(boss, wo_id, "confirmed", now=T0)
    ops.transition(boss, wo_id, "fixed", now=T0)
    kept = cli.invoke(args=["ops", "purge", "--now", (T0 + timedelta(days=29)).isoformat()])
    assert kept.exit_code == 0 and "of 0 report(s)" in kept.output
    erased = cli.invoke(args=["ops", "purge", "--older-than-days", "7", "--now", (T0 + timedelta(days=8)).isoformat()])
    assert erased.exit_code == 0 and "of 1 report(s)" in erased.output
    assert [r.phone for r in ops.store.reports(wo_id)] == [None]


def test_demo_loads_an_organisation_its_staff_and_reports_and_prints_logins(cli, store, ops):
    store.upsert([station("toilet-001", 27.818, 113.157, source="demo"),
                  station("toilet-002", 27.800, 113.150, source="demo")])
    first = cli.invoke(args=["ops", "demo"])
    assert first.exit_code == 0, first.output
    assert "DEMO" in first.output and "zhanzhang@demo.yizhan.invalid" in first.output
    password = next(line.split()[1] for line in first.output.splitlines() if "zhanzhang@" in line)
    assert ops.accounts.authenticate("zhanzhang@demo.yizhan.invalid", password) is not None
    with store.reading() as conn:
        count = conn.execute(text("SELECT count(*) FROM work_order")).scalar()
    assert count == 3
    again = cli.invoke(args=["ops", "demo"])  # idempotent: new passwords, no more reports
    assert again.exit_code == 0
    with store.reading() as conn:
        assert conn.execute(text("SELECT count(*) FROM work_order")).scalar() == 3
    assert ops.accounts.authenticate("zhanzhang@demo.yizhan.invalid", password) is None


def test_org_categories_print_replace_and_reset(cli, store, ops, tmp_path):
    _owned_station(store, ops)
    shown = cli.invoke(args=["orgs", "categories", "cli-org"])
    items = json.loads(shown.output)
    assert [c["code"] for c in items][:3] == ["dirty", "no_paper", "no_water"]
    items[2]["response"] = {"minutes": 15}
    edited = tmp_path / "categories.json"
    edited.write_text(json.dumps(items), encoding="utf-8")
    changed = cli.invoke(args=["orgs", "categories", "cli-org", "--set", str(edited)])
    assert changed.exit_code == 0
    org = ops.accounts.organisation_by_code("cli-org")
    assert next(c for c in org.categories if c.code == "no_water").response.minutes == 15
    edited.write_text(json.dumps([{"code": "Bad"}]), encoding="utf-8")
    refused = cli.invoke(args=["orgs", "categories", "cli-org", "--set", str(edited)])
    assert refused.exit_code != 0 and "snake_case" in refused.output
    assert next(c for c in ops.accounts.organisation_by_code("cli-org").categories
                if c.code == "no_water").response.minutes == 15  # nothing changed
    reset = cli.invoke(args=["orgs", "categories", "cli-org", "--reset"])
    assert reset.exit_code == 0
    assert next(c for c in ops.accounts.organisation_by_code("cli-org").categories
                if c.code == "no_water").response.minutes == 20

