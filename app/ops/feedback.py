"""The tracking page's questionnaire: once a work order is fixed or closed, the person holding its
link is asked how it was handled (满意 / 基本满意 / 不满意, FixMyStreet's questionnaire is the
model). One answer per device per work order, kept with the work order; a second is ignored.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import text

from app.dbtime import to_db

# The answers, in the order asked (the migration's check constraint lists the same ids).
ANSWERS: dict[str, dict[str, str]] = {
    "satisfied": {"zh-CN": "满意", "en": "Satisfied"},
    "basically_satisfied": {"zh-CN": "基本满意", "en": "Mostly satisfied"},
    "dissatisfied": {"zh-CN": "不满意", "en": "Dissatisfied"},
}
# Asked only once the work is done.
ASKED_IN = ("fixed", "closed")


class NotAsked(ValueError):
    """The work order is still open, or the answer is not one of ANSWERS."""


class Feedback:
    def __init__(self, stations):
        self._stations = stations  # the station store: same database, its transactions

    def give(self, work_order_id: int, state: str, device_hash: str, answer: str, now: datetime) -> bool:
        """Keep this device's answer; False when it had already answered (the first answer stays)."""
        if state not in ASKED_IN or answer not in ANSWERS:
            raise NotAsked(answer)
        with self._stations.transaction() as conn:
            done = conn.execute(text(
                "INSERT INTO work_order_feedback (work_order_id, device_hash, answer, created_at)"
                " VALUES (:wo, :dev, :answer, :now) ON CONFLICT (work_order_id, device_hash) DO NOTHING"),
                {"wo": work_order_id, "dev": device_hash, "answer": answer,
                 "now": to_db(now, conn.dialect.name)})
            return done.rowcount == 1

    def answer_of(self, work_order_id: int, device_hash: str | None) -> str | None:
        if device_hash is None:
            return None
        with self._stations.reading() as conn:
            return conn.execute(text("SELECT answer FROM work_order_feedback WHERE work_order_id = :wo"
                                     " AND device_hash = :dev"), {"wo": work_order_id, "dev": device_hash}).scalar()

    def counts(self, work_order_id: int) -> dict[str, int]:
        """How many devices gave each answer (every answer listed, 0 when none)."""
        with self._stations.reading() as conn:
            found = dict(conn.execute(text("SELECT answer, count(*) FROM work_order_feedback"
                                           " WHERE work_order_id = :wo GROUP BY answer"), {"wo": work_order_id}).all())
        return {answer: found.get(answer, 0) for answer in ANSWERS}
