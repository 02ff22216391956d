"""The tracking page's questionnaire (issue #9 §1) on both stores: asked once the work order is
fixed or closed, one answer per device (cookie) per work order, kept with the work order."""
import re
from datetime import datetime, timezone

import pytest
from sqlalchemy import text

from app.device import DEVICE_COOKIE
from app.ops.feedback import Feedback, NotAsked
from tests.test_reporting import _TOKEN, _log_in, _post, _tracking_token, world  # noqa: F401  (world: a fixture)

NOW = datetime(2026, 11, 20, 8, 0, tzinfo=timezone.utc)


def _stored(store):
    with store.reading() as conn:
        return [tuple(r) for r in conn.execute(text("SELECT work_order_id, answer FROM work_order_feedback"
                                                    " ORDER BY id")).all()]


def _fixed(world):
    token = _tracking_token(_post(world["client"], world["id"]))
    wo_id = int(token.split("-", 1)[0])
    return token, wo_id


def _answer(client, token, answer, html=None):
    html = html if html is not None else client.get(f"/r/{token}?lang=en").get_data(as_text=True)
    csrf = _TOKEN.search(html).group(1)
    return client.post(f"/r/{token}/feedback?lang=en", data={"answer": answer, "csrf_token": csrf})


def test_an_open_work_order_asks_nothing_and_refuses_an_answer(world):
    token, wo_id = _fixed(world)
    html = world["client"].get(f"/r/{token}?lang=en").get_data(as_text=True)
    assert "Are you satisfied" not in html and 'name="answer"' not in html
    # A post anyway (CSRF token from the report form's session): refused, nothing kept.
    csrf = _TOKEN.search(world["client"].get(f"/s/{world['id']}/report?lang=en").get_data(as_text=True)).group(1)
    refused = world["client"].post(f"/r/{token}/feedback?lang=en", data={"answer": "satisfied", "csrf_token": csrf})
    assert refused.status_code == 400 and "Please choose" in refused.get_data(as_text=True)
    assert _stored(world["store"]) == []


def test_a_fixed_work_order_asks_once_per_device_and_keeps_the_answer(world):
    client, ops = world["client"], world["ops"]
    token, wo_id = _fixed(world)
    ops.transition(world["manager"], wo_id, "confirmed")
    ops.transition(world["manager"], wo_id, "fixed")
    page = client.get(f"/r/{token}?lang=en")
    html = page.get_data(as_text=True)
    assert "Are you satisfied with how this was handled?" in html
    assert re.findall(r'name="answer" value="([a-z_]+)"><b>([^<]+)</b>', html) == [
        ("satisfied", "Satisfied"), ("basically_satisfied", "Mostly satisfied"), ("dissatisfied", "Dissatisfied")]
    assert page.headers["Referrer-Policy"] == "origin"  # the site only: never the token in the path
    done = _answer(client, token, "basically_satisfied", html)
    assert done.status_code == 303 and done.headers["Location"] == f"/r/{token}?lang=en"
    assert DEVICE_COOKIE in done.headers["Set-Cookie"] and "HttpOnly" in done.headers["Set-Cookie"]
    after = client.get(done.headers["Location"])
    thanks = after.get_data(as_text=True)
    assert "Thank you for your feedback! Your answer: Mostly satisfied" in thanks and 'name="answer"' not in thanks
    assert after.headers["Referrer-Policy"] == "no-referrer"
    # The same device again (a replayed post): the first answer stays.
    csrf = _TOKEN.search(thanks)
    assert csrf is None  # no form, no token on the page
    again = _answer(client, token, "dissatisfied", html)
    assert again.status_code == 303
    assert _stored(world["store"]) == [(wo_id, "basically_satisfied")]
    # Another device (no cookie) may answer too, once.
    client.delete_cookie(DEVICE_COOKIE)
    assert _answer(client, token, "dissatisfied").status_code == 303
    assert _stored(world["store"]) == [(wo_id, "basically_satisfied"), (wo_id, "dissatisfied")]
    assert Feedback(world["store"]).counts(wo_id) == {"satisfied": 0, "basically_satisfied": 1, "dissatisfied": 1}


def test_closed_in_chinese_and_bad_answers(world):
    client, ops = world["client"], world["ops"]
    token, wo_id = _fixed(world)
    for to in ("confirmed", "fixed"):
        ops.transition(world["manager"], wo_id, to)
    ops.transition(world["manager"], wo_id, "closed", reason="resolved")
    zh = client.get(f"/r/{token}?lang=zh-CN").get_data(as_text=True)
    assert "您对这次处理满意吗？" in zh and "<b>满意</b>" in zh and "<b>基本满意</b>" in zh and "<b>不满意</b>" in zh
    for bad in ("", "very_happy"):
        answer = _answer(client, token, bad)
        assert answer.status_code == 400 and "Please choose" in answer.get_data(as_text=True)
    no_token = client.post(f"/r/{token}/feedback?lang=en", data={"answer": "satisfied"})
    assert no_token.status_code == 400 and "expired" in no_token.get_data(as_text=True)
    assert _stored(world["store"]) == []
    assert client.post(f"/r/{wo_id}-forged/feedback", data={"answer": "satisfied"}).status_code == 404


def test_the_service_refuses_open_work_orders_and_unknown_answers(world):
    token, wo_id = _fixed(world)
    feedback = Feedback(world["store"])
    with pytest.raises(NotAsked):
        feedback.give(wo_id, "new", "dev", "satisfied", NOW)
    with pytest.raises(NotAsked):
        feedback.give(wo_id, "fixed", "dev", "meh", NOW)
    assert feedback.give(wo_id, "fixed", "dev", "satisfied", NOW) is True
    assert feedback.give(wo_id, "fixed", "dev", "dissatisfied", NOW) is False
    assert feedback.answer_of(wo_id, "dev") == "satisfied" and feedback.answer_of(wo_id, None) is None


def test_staff_see_how_reporters_judged_the_handling(world):
    ops, manager = world["ops"], world["manager"]
    token, wo_id = _fixed(world)
    ops.transition(manager, wo_id, "confirmed")
    ops.transition(manager, wo_id, "fixed")
    assert ops.get_work_order(manager, wo_id).feedback == {"satisfied": 0, "basically_satisfied": 0,
                                                           "dissatisfied": 0}
    Feedback(world["store"]).give(wo_id, "fixed", "device-a", "satisfied", NOW)
    Feedback(world["store"]).give(wo_id, "fixed", "device-b", "dissatisfied", NOW)
    assert ops.get_work_order(manager, wo_id).feedback == {"satisfied": 1, "basically_satisfied": 0,
                                                           "dissatisfied": 1}
    from app.api.ops_serialize import work_order_detail

    answer = work_order_detail(ops.get_work_order(manager, wo_id), timezone.utc, NOW)
    assert answer["feedback"] == {"satisfied": 1, "basically_satisfied": 0, "dissatisfied": 1}
    page = _log_in(world["app"], manager.email).get(f"/staff/work-orders/{wo_id}?lang=en").get_data(as_text=True)
    assert "verdict</dt><dd>Satisfied 1 · Dissatisfied 1</dd>" in page
