"""Demo operations data for `make run`: an organisation running the demo stations, its 站长,
an org manager and a worker, and a few reports. Demo mode only: the logins are printed, and
their passwords are new random ones each time this runs (there is no fixed demo password to
leak into a real deployment).
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import text

from app.dbtime import utcnow
from app.ops.service import Ops, ReportInput

DEMO_ORG = "demo"
DEMO_SOURCE = "demo"
DEMO_USERS = (
    # (e-mail, role, who)
    ("zhanzhang@demo.yizhan.invalid", "station_manager", "站长 station manager"),
    ("manager@demo.yizhan.invalid", "org_manager", "管养单位负责人 org manager"),
    ("worker@demo.yizhan.invalid", "worker", "保洁/维修 worker"),
)
# (station source_id, category, description, minutes ago): one already overdue.
DEMO_REPORTS = (
    ("toilet-001", "no_water", "洗手台没有热水（演示）", 5),
    ("toilet-002", "dirty", "地面湿滑有异味（演示）", 45),
    ("toilet-001", "accessible_broken", "无障碍厕位门锁坏了（演示）", 60 * 30),
)


@dataclass(frozen=True)
class DemoLogin:
    email: str
    role: str
    who: str
    password: str


def load_demo(ops: Ops, now: datetime | None = None) -> list[DemoLogin]:
    """Create (or refresh) the demo organisation, its staff and reports; the logins to print."""
    now = now or utcnow()
    accounts = ops.accounts
    if accounts.organisation_by_code(DEMO_ORG) is None:
        accounts.create_organisation(DEMO_ORG, "株洲建宁驿站管理中心（演示 Demo）")
    logins = []
    for email, role, who in DEMO_USERS:
        password = secrets.token_urlsafe(12)
        if accounts.user_by_email(email) is None:
            accounts.create_user(email, password, role, DEMO_ORG)
        else:
            accounts.set_password(email, password)
        logins.append(DemoLogin(email, role, who, password))
    accounts.assign_stations(DEMO_ORG, DEMO_SOURCE, manager_email=DEMO_USERS[0][0])
    with ops.stations.reading() as conn:
        has_reports = conn.execute(text(
            "SELECT 1 FROM work_order w JOIN organisation o ON o.id = w.organisation_id WHERE o.code = :org"),
            {"org": DEMO_ORG}).first() is not None
        ids = dict(conn.execute(text("SELECT source_id, id FROM station WHERE source = :source"),
                                {"source": DEMO_SOURCE}).all())
    if not has_reports:
        for source_id, category, description, minutes_ago in DEMO_REPORTS:
            if source_id in ids:
                ops.submit_report(ReportInput(category=category, station_id=ids[source_id],
                                              description=description), now - timedelta(minutes=minutes_ago))
    return logins
