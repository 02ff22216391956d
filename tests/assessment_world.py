"""A hand-worked quarter for the assessment report (tests/test_assessment.py): 2026Q3 (1 July –
30 September, 92 days) and the quarter before it, 2026Q2 (91 days), in Asia/Shanghai.

Organisation east runs four stations: S1 and S2 managed by zhang, S3 by li, S4 by nobody.
West runs W1; nothing of west's may show in east's figures. Every clock below is local time
(UTC+8); the limits are the defaults (no_water: respond 20 min, resolve 24 h; dirty: respond
10 min, resolve 24 h). no_water is a fault (the facility is not intact while it is open), dirty
is not.

2026Q3 work orders (response in minutes / resolution in hours; ✓ within the limit, ✗ not):

    WO1 no_water S1  07-10 09:00  confirmed 09:10 (10 ✓)  fixed 07-10 13:00 (4 ✓)   + a "me too" report
    WO2 dirty    S1  08-05 08:00  confirmed 08:30 (30 ✗)  fixed 08-06 10:00 (26 ✗)
    WO3 no_water S1  08-20 22:00  assigned  22:05 (5 ✓)   fixed 08-22 06:00 (32 ✗)
    WO4 dirty    S3  09-01 10:00  confirmed 10:06 (6 ✓)   fixed 09-01 12:00 (2 ✓)
    WO5 no_water S3  09-29 20:00  never answered: both clocks ran out (✗ ✗), still open
    WO6 no_water S2  07-03 12:00  closed as duplicate 12:15 (15 ✓)   (no resolution to judge, no fault)
    WO7 dirty    S1  09-15 09:00  confirmed 09:04 (4 ✓)   fixed 09:30 (0.5 ✓)

2026Q2: WO8 dirty S2 06-10 10:00, confirmed 10:05 (5 ✓), fixed 11:00 (1 ✓).

Questionnaire answers: WO1 satisfied + basically satisfied (07-11), WO2 dissatisfied (08-07),
WO3 basically satisfied (08-23), WO4 satisfied (09-02) — and WO7 satisfied on 10-02 (Q4: not
counted); WO8 satisfied on 06-11 (Q2).

Ratings (updated in the period): S1 5 and 4, S2 3, S3 first 1 then replaced by 2 within 12 h
(counts as one rating of 2); S1 1 on 06-30 23:00 (Q2); W1 1 (west).

Inspections: S1 07-01 08:00, 07-01 18:00 (same day: one), 07-02 00:30 (the next local day,
though still 07-01 in UTC); S2 09-30 23:30; S3 08-01 10:00; S2 10-01 00:10 (Q4, not counted:
30 September in UTC); S1 06-30 23:59 (Q2).

Hand-worked figures, 2026Q3, the organisation (previous: 2026Q2):

    satisfaction      4 good of 5 answers                          = 80.0 %  (Q2: 1/1 = 100.0)
    stars             (5 + 4 + 3 + 2) / 4                          = 3.50    (Q2: 1.00, n 1)
    reports/station   7 work orders' reports + 1 "me too" = 8 / 4  = 2.00    (Q2: 1 / 4 = 0.25)
    responded on time WO1 WO3 WO4 WO6 WO7 of 7 counted             = 71.4 %  (Q2: 100.0)
    resolved on time  WO1 WO4 WO7 of 6 (WO6 is a duplicate)        = 50.0 %  (Q2: 100.0)
    response minutes  [4, 5, 6, 10, 15, 30]: median (6+10)/2       = 8.0;  p90 at 4.5: 15 + .5·15 = 22.5
    resolution hours  [0.5, 2, 4, 26, 32]: median                  = 4.00; p90 at 3.6: 26 + .6·6  = 29.60
      no_water        minutes [5, 10, 15] → 10.0, p90 at 1.8: 10 + .8·5 = 14.0; hours [4, 32] → 18.00, 29.20
      dirty           minutes [4, 6, 30] → 6.0, p90 6 + .8·24 = 25.2;        hours [0.5, 2, 26] → 2.00, 21.20
    inspections       station-days done: S1 2, S2 1, S3 1 = 4 of 3 stations × 92 days = 276 → 1.4 %  (Q2: 1/273 → 0.4)
    intact            faulty station-days: S1 07-10, S1 08-20..22 (3), S3 09-29..30 (2) = 6;
                      (4 × 92 − 6) / 368 = 362 / 368                = 98.4 %  (Q2: 364 / 364 = 100.0)
    work orders       7: no_water 4, dirty 3 (Q2: 1)
    frequent problems no_water 4 (recurs at S1: 2), dirty 3 (recurs at S1: 2)

zhang (S1, S2): satisfaction 3/4 = 75.0; stars (5+4+3)/3 = 4.00; reports 6/2 = 3.00; responded
on time 4/5 = 80.0; resolved 2/4 = 50.0; minutes [4, 5, 10, 15, 30] → 10.0, p90 at 3.6:
15 + .6·15 = 24.0; hours [0.5, 4, 26, 32] → median at 1.5: 4 + .5·22 = 15.00, p90 at 2.7:
26 + .7·6 = 30.20; inspections 3 / 184 = 1.6; intact 180 / 184 = 97.8; work orders 5.
li (S3): satisfaction 1/1 = 100.0; stars 2.00; reports 2/1 = 2.00; responded 1/2 = 50.0;
resolved 1/2 = 50.0; minutes [6] → 6.0, 6.0; hours [2] → 2.00, 2.00; inspections 1/92 = 1.1;
intact 90/92 = 97.8; work orders 2.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import text

from app.ops.checklists import checklist_for
from app.ops.feedback import Feedback
from app.ops.service import ReportInput
from app.stations.ratings import Ratings
from tests.helpers import station

SHANGHAI = ZoneInfo("Asia/Shanghai")
PASSWORD = "correct horse battery"
ADMIN, BOSS, ZHANG, LI, WANG = ("admin@yizhan.example", "boss@east.example", "zhang@east.example",
                                "li@east.example", "wang@east.example")
WEST_BOSS, CHEN = "boss@west.example", "chen@west.example"
# After both quarters (as the report is asked for in the tests that call the service directly;
# the API and the pages use the real clock, later still).
AS_OF = datetime(2026, 11, 20, 10, 0, tzinfo=SHANGHAI)


def at(month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=SHANGHAI)


@dataclass
class World:
    ops: object
    station: dict[str, int]
    work_order: dict[str, int] = field(default_factory=dict)
    token: dict[str, str] = field(default_factory=dict)

    def user(self, email: str):
        return self.ops.accounts.user_by_email(email)

    def bearer(self, email: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token[email]}"}


def build(store, ops) -> World:
    store.upsert([station(sid, 27.83 + i / 1000, 113.15, "toilet", hours="24/7", source="assess", name=f"站 {sid}")
                  for i, sid in enumerate(("S1", "S2", "S3", "S4", "W1"))])
    acc = ops.accounts
    acc.create_organisation("east", "荷塘区环卫所")
    acc.create_organisation("west", "西区环卫所")
    for email, role, org in ((ADMIN, "admin", None), (BOSS, "org_manager", "east"), (ZHANG, "station_manager", "east"),
                             (LI, "station_manager", "east"), (WANG, "worker", "east"),
                             (WEST_BOSS, "org_manager", "west"), (CHEN, "station_manager", "west")):
        acc.create_user(email, PASSWORD, role, org)
    acc.assign_stations("east", "assess", ["S1", "S2"], manager_email=ZHANG)
    acc.assign_stations("east", "assess", ["S3"], manager_email=LI)
    acc.assign_stations("east", "assess", ["S4"])
    acc.assign_stations("west", "assess", ["W1"], manager_email=CHEN)
    with store.reading() as conn:
        ids = dict(conn.execute(text("SELECT source_id, id FROM station WHERE source = 'assess'")).all())
    world = World(ops, ids)
    admin = acc.user_by_email(ADMIN)

    def report(name, category, sid, created):
        done = ops.submit_report(ReportInput(category=category, station_id=ids[sid], description=name), created)
        world.work_order[name] = done.work_order_id
        return done.work_order_id

    def move(name, to, when, **kw):
        ops.transition(admin, world.work_order[name], to, now=when, **kw)

    report("WO1", "no_water", "S1", at(7, 10, 9))
    ops.submit_report(ReportInput(category="no_water", station_id=ids["S1"], description="me too"), at(7, 10, 9, 5))
    move("WO1", "confirmed", at(7, 10, 9, 10))
    move("WO1", "fixed", at(7, 10, 13))
    report("WO2", "dirty", "S1", at(8, 5, 8))
    move("WO2", "confirmed", at(8, 5, 8, 30))
    move("WO2", "fixed", at(8, 6, 10))
    report("WO3", "no_water", "S1", at(8, 20, 22))
    move("WO3", "assigned", at(8, 20, 22, 5), assignee=WANG)
    move("WO3", "fixed", at(8, 22, 6))
    report("WO4", "dirty", "S3", at(9, 1, 10))
    move("WO4", "confirmed", at(9, 1, 10, 6))
    move("WO4", "fixed", at(9, 1, 12))
    report("WO5", "no_water", "S3", at(9, 29, 20))
    report("WO6", "no_water", "S2", at(7, 3, 12))
    move("WO6", "closed", at(7, 3, 12, 15), reason="duplicate")
    report("WO7", "dirty", "S1", at(9, 15, 9))
    move("WO7", "confirmed", at(9, 15, 9, 4))
    move("WO7", "fixed", at(9, 15, 9, 30))
    report("WO8", "dirty", "S2", at(6, 10, 10))
    move("WO8", "confirmed", at(6, 10, 10, 5))
    move("WO8", "fixed", at(6, 10, 11))
    report("WEST", "no_water", "W1", at(8, 1, 9))  # west's: open all along, never in east's figures

    feedback = Feedback(store)
    for name, device, answer, when in (("WO1", "d1", "satisfied", at(7, 11, 9)),
                                       ("WO1", "d2", "basically_satisfied", at(7, 11, 10)),
                                       ("WO2", "d3", "dissatisfied", at(8, 7, 9)),
                                       ("WO3", "d4", "basically_satisfied", at(8, 23, 9)),
                                       ("WO4", "d5", "satisfied", at(9, 2, 9)),
                                       ("WO7", "d6", "satisfied", at(10, 2, 9)),
                                       ("WO8", "d7", "satisfied", at(6, 11, 9))):
        assert feedback.give(world.work_order[name], "fixed", device, answer, when)

    ratings = Ratings(store)
    for sid, device, stars, when in (("S1", "r1", 5, at(7, 5, 10)), ("S1", "r2", 4, at(8, 5, 10)),
                                     ("S2", "r3", 3, at(9, 5, 10)), ("S3", "r4", 1, at(9, 10, 10)),
                                     ("S3", "r4", 2, at(9, 10, 12)),  # replaces the 1 (within 12 h)
                                     ("S1", "r5", 1, at(6, 30, 23)), ("W1", "r6", 1, at(8, 1, 10))):
        ratings.rate(ids[sid], device, stars, (), when)

    passed = {item.code: True for item in checklist_for("toilet")}
    for sid, email, when in (("S1", ZHANG, at(7, 1, 8)), ("S1", ZHANG, at(7, 1, 18)), ("S1", ZHANG, at(7, 2, 0, 30)),
                             ("S2", ZHANG, at(9, 30, 23, 30)), ("S3", LI, at(8, 1, 10)),
                             ("S2", ZHANG, at(10, 1, 0, 10)), ("S1", ZHANG, at(6, 30, 23, 59))):
        ops.inspect(acc.user_by_email(email), ids[sid], passed, now=when)
    world.token = {email: acc.create_token(email) for email in (ADMIN, BOSS, ZHANG, LI, WANG, WEST_BOSS)}
    return world
