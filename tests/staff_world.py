"""A small operations world for the staff API tests (tests/test_ops_api.py, tests/test_ops_matrix.py).

Two organisations. East (Asia/Shanghai) owns rest station A1 (managed by zhang, with hot water) and
toilet A2 (managed by li); west (Asia/Urumqi, UTC+6) owns toilet B1 (managed by chen). Each organisation has an org
manager and workers. Three work orders, each already assigned:

- ``theirs``    no_water at A1, given to wang (east worker); zhang manages A1
- ``colleague`` dirty at A2, given to zhao (east worker); li manages A2
- ``other``     no_water at B1, given to liu (west worker)

Every user has a bearer token (``world.token[email]``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import text

from app.dbtime import utcnow
from app.ops.service import ReportInput
from tests.helpers import station

PASSWORD = "correct horse battery"
ADMIN = "admin@yizhan.example"
EAST_BOSS, ZHANG, LI, WANG, ZHAO = ("boss@east.example", "zhang@east.example", "li@east.example",
                                    "wang@east.example", "zhao@east.example")
WEST_BOSS, CHEN, LIU = "boss@west.example", "chen@west.example", "liu@west.example"
PEOPLE = {
    ADMIN: ("admin", None),
    EAST_BOSS: ("org_manager", "east"), ZHANG: ("station_manager", "east"), LI: ("station_manager", "east"),
    WANG: ("worker", "east"), ZHAO: ("worker", "east"),
    WEST_BOSS: ("org_manager", "west"), CHEN: ("station_manager", "west"), LIU: ("worker", "west"),
}
REPORTER_PHONE, REPORTER_EMAIL = "13812345678", "resident@example.cn"


@dataclass
class World:
    ops: object
    station: dict[str, int]  # 'a1', 'a2', 'b1' -> id
    work_order: dict[str, int]  # 'theirs', 'colleague', 'other' -> id
    token: dict[str, str] = field(default_factory=dict)  # email -> bearer token
    created: datetime | None = None

    def bearer(self, email: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token[email]}"}


def build(store, ops, created: datetime | None = None) -> World:
    created = created or utcnow() - timedelta(minutes=5)
    store.upsert([
        station("a1", 27.8300, 113.1500, "rest_station", yes=("hot_water", "toilet"), hours="24/7", source="ops",
                name="建宁驿站 A1"),
        station("a2", 27.8350, 113.1550, "toilet", hours="24/7", source="ops", name="荷塘公厕 A2"),
        station("b1", 27.9000, 113.2000, "toilet", hours="24/7", source="ops", name="西区公厕 B1"),
    ])
    acc = ops.accounts
    acc.create_organisation("east", "荷塘区环卫所")
    acc.create_organisation("west", "西区环卫所", timezone="Asia/Urumqi")  # UTC+6: times show in it
    for email, (role, org) in PEOPLE.items():
        acc.create_user(email, PASSWORD, role, org)
    acc.assign_stations("east", "ops", ["a1"], manager_email=ZHANG)
    acc.assign_stations("east", "ops", ["a2"], manager_email=LI)
    acc.assign_stations("west", "ops", ["b1"], manager_email=CHEN)
    with store.reading() as conn:
        ids = dict(conn.execute(text("SELECT source_id, id FROM station WHERE source = 'ops'")).all())
    admin = acc.user_by_email(ADMIN)
    orders = {}
    for name, code, sid, worker in (("theirs", "no_water", "a1", WANG), ("colleague", "dirty", "a2", ZHAO),
                                    ("other", "no_water", "b1", LIU)):
        done = ops.submit_report(ReportInput(category=code, station_id=ids[sid], description=f"{name} problem",
                                             phone=REPORTER_PHONE, email=REPORTER_EMAIL), created)
        ops.transition(admin, done.work_order_id, "assigned", assignee=worker, now=created + timedelta(minutes=1))
        orders[name] = done.work_order_id
    world = World(ops, ids, orders, created=created)
    world.token = {email: acc.create_token(email) for email in PEOPLE}
    return world
