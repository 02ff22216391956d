"""The notification outbox (app/ops/outbox.py), on both stores, delivering to a local stand-in
(tests/webhook_standin.py) over real HTTP. Every expected body and time is written out by hand."""
from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from functools import partial

import pytest

from app.ops.errors import Invalid
from app.ops.outbox import (
    WECOM_MAX_CONTENT_BYTES, DeliveryCounts, DeliveryFailed, Message, Outbox, backoff, format_payload,
    http_send, validate_webhook_url,
)

T0 = datetime(2026, 3, 2, 1, 0, tzinfo=timezone.utc)  # 09:00 in Shanghai
SECRET_KEY = "693a91f6-7aaa-4bc4-97a0-0ec2sifa5aaa"
S = timedelta(seconds=1)

MESSAGE = Message(
    title="工单 #7 已派给您",
    lines=["问题: 没有厕纸", "站点: 人民公园公厕 (#12)"],
    link="https://yizhan.example/staff/work-orders/7",
    mentions=["zhangsan"],
    data={"work_order_id": 7, "category": "no_paper"},
)
WECOM_BODY = {"msgtype": "markdown", "markdown": {"content": (
    "**工单 #7 已派给您**\n"
    "问题: 没有厕纸\n"
    "站点: 人民公园公厕 (#12)\n"
    "[查看详情](https://yizhan.example/staff/work-orders/7)\n"
    "<@zhangsan>"
)}}


@pytest.fixture
def outbox(store):
    return Outbox(store)


def robot_url(standin):
    return standin.url(key=SECRET_KEY)


def quick(timeout=0.3):
    return partial(http_send, timeout=timeout)


# -- delivery ----------------------------------------------------------------------------------

def test_wecom_message_is_delivered_as_robot_markdown(outbox, webhook_standin):
    id = outbox.enqueue("assigned", robot_url(webhook_standin), "wecom", MESSAGE, T0)

    assert outbox.deliver_due(T0) == DeliveryCounts(delivered=1, failed=0)

    [received] = webhook_standin.received
    assert received.body == WECOM_BODY
    assert received.path == "/cgi-bin/webhook/send" and received.query == {"key": SECRET_KEY}
    assert received.content_type == "application/json; charset=utf-8"
    item = outbox.item(id)
    assert (item.delivered_at, item.attempts, item.last_error) == (T0, 1, None)
    assert outbox.due(T0 + timedelta(days=1)) == []


def test_json_message_is_delivered_with_topic_text_and_data(outbox, webhook_standin):
    outbox.enqueue("breach", webhook_standin.url("/hooks/ops"), "json", MESSAGE, T0)

    assert outbox.deliver_due(T0) == DeliveryCounts(1, 0)

    assert webhook_standin.bodies == [{
        "topic": "breach", "title": "工单 #7 已派给您", "text": "问题: 没有厕纸\n站点: 人民公园公厕 (#12)",
        "link": "https://yizhan.example/staff/work-orders/7",
        "data": {"work_order_id": 7, "category": "no_paper"},
    }]


def test_the_body_is_fixed_when_enqueued(outbox):
    id = outbox.enqueue("assigned", "https://hooks.example/x", "wecom", MESSAGE, T0)

    item = outbox.item(id)
    assert item.payload == WECOM_BODY
    assert (item.topic, item.format, item.url) == ("assigned", "wecom", "https://hooks.example/x")
    assert (item.created_at, item.next_attempt_at, item.attempts, item.delivered_at) == (T0, T0, 0, None)


def test_delivered_messages_are_never_sent_again(outbox, webhook_standin):
    outbox.enqueue("assigned", robot_url(webhook_standin), "wecom", MESSAGE, T0)
    assert outbox.deliver_due(T0) == DeliveryCounts(1, 0)

    for later in (T0, T0 + 30 * S, T0 + timedelta(days=2)):
        assert outbox.deliver_due(later) == DeliveryCounts(0, 0)
    assert len(webhook_standin.received) == 1


def test_a_message_not_yet_due_is_not_sent(outbox, webhook_standin):
    id = outbox.enqueue("assigned", robot_url(webhook_standin), "wecom", MESSAGE, T0 + 60 * S)

    assert outbox.due(T0 + 59 * S) == []
    assert outbox.deliver_due(T0 + 59 * S) == DeliveryCounts(0, 0)
    assert webhook_standin.received == []
    assert [item.id for item in outbox.due(T0 + 60 * S)] == [id]


def test_due_is_oldest_first_and_limited(outbox):
    late = outbox.enqueue("b", "https://hooks.example/1", "json", MESSAGE, T0 + 2 * S)
    early = outbox.enqueue("a", "https://hooks.example/2", "json", MESSAGE, T0)
    middle = outbox.enqueue("c", "https://hooks.example/3", "json", MESSAGE, T0 + S)

    assert [item.id for item in outbox.due(T0 + 10 * S)] == [early, middle, late]
    assert [item.id for item in outbox.due(T0 + 10 * S, limit=2)] == [early, middle]
    assert [item.id for item in outbox.due(T0 + S)] == [early, middle]


def test_deliver_due_sends_oldest_first_up_to_the_limit(outbox, webhook_standin):
    for second, topic in ((0, "first"), (2, "third"), (1, "second")):  # ids not in age order
        outbox.enqueue(topic, webhook_standin.url(), "json", Message(title=topic), T0 + second * S)

    assert outbox.deliver_due(T0 + 10 * S, limit=2) == DeliveryCounts(2, 0)
    assert [body["topic"] for body in webhook_standin.bodies] == ["first", "second"]
    assert outbox.deliver_due(T0 + 10 * S, limit=2) == DeliveryCounts(1, 0)
    assert [body["topic"] for body in webhook_standin.bodies] == ["first", "second", "third"]


def test_enqueue_in_a_transaction_that_rolls_back_leaves_nothing(store, outbox):
    with pytest.raises(RuntimeError, match="the change failed"):
        with store.transaction():
            id = outbox.enqueue("assigned", "https://hooks.example/x", "wecom", MESSAGE, T0)
            assert outbox.item(id) is not None
            raise RuntimeError("the change failed")

    assert outbox.item(id) is None
    assert outbox.due(T0 + timedelta(days=1)) == []


# -- failures and retries ----------------------------------------------------------------------

def test_an_endpoint_that_is_down_loses_nothing_and_gets_it_when_up(outbox, webhook_standin):
    url = robot_url(webhook_standin)
    webhook_standin.down()
    id = outbox.enqueue("assigned", url, "wecom", MESSAGE, T0)

    assert outbox.deliver_due(T0) == DeliveryCounts(0, 1)
    item = outbox.item(id)
    assert (item.attempts, item.next_attempt_at, item.delivered_at) == (1, T0 + 30 * S, None)
    assert "refused" in item.last_error.lower()
    assert SECRET_KEY not in item.last_error and "key=" not in item.last_error

    webhook_standin.up()
    assert outbox.deliver_due(T0 + 29 * S) == DeliveryCounts(0, 0)  # not due yet
    assert webhook_standin.received == []
    assert outbox.deliver_due(T0 + 30 * S) == DeliveryCounts(1, 0)
    assert webhook_standin.bodies == [WECOM_BODY]
    item = outbox.item(id)
    assert (item.attempts, item.delivered_at) == (2, T0 + 30 * S)


def test_backoff_doubles_from_30_seconds_to_an_hour_and_stays_there():
    assert [backoff(n) // S for n in range(1, 10)] == [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]
    assert backoff(10_000) == timedelta(hours=1)
    with pytest.raises(ValueError):
        backoff(0)


def test_repeated_failures_are_retried_on_the_backoff_schedule(outbox, webhook_standin):
    webhook_standin.mode = "error500"
    id = outbox.enqueue("assigned", webhook_standin.url(), "json", MESSAGE, T0)

    now, expected_waits = T0, [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]
    for attempt, wait in enumerate(expected_waits, start=1):
        assert outbox.deliver_due(now) == DeliveryCounts(0, 1)
        item = outbox.item(id)
        assert (item.attempts, item.next_attempt_at, item.last_error) == (attempt, now + wait * S, "HTTP 500")
        assert outbox.deliver_due(now + (wait - 1) * S) == DeliveryCounts(0, 0)
        now += wait * S
    assert len(webhook_standin.received) == len(expected_waits)

    webhook_standin.mode = "ok"
    assert outbox.deliver_due(now) == DeliveryCounts(1, 0)
    assert outbox.item(id).delivered_at == now


def test_a_hanging_endpoint_times_out_and_is_retried(outbox, webhook_standin):
    webhook_standin.mode = "hang"
    id = outbox.enqueue("assigned", robot_url(webhook_standin), "wecom", MESSAGE, T0)

    started = time.monotonic()
    assert outbox.deliver_due(T0, send=quick(0.3)) == DeliveryCounts(0, 1)
    assert time.monotonic() - started < 2.5
    item = outbox.item(id)
    assert (item.attempts, item.next_attempt_at, item.last_error) == (1, T0 + 30 * S, "timed out after 0.3 s")

    webhook_standin.mode = "ok"
    assert outbox.deliver_due(T0 + 30 * S, send=quick(0.3)) == DeliveryCounts(1, 0)
    assert webhook_standin.bodies == [WECOM_BODY, WECOM_BODY]  # the hung request was received too


def test_a_hung_host_costs_one_timeout_per_run_not_one_per_message(outbox, webhook_standin):
    webhook_standin.mode = "hang"
    ids = [outbox.enqueue("assigned", robot_url(webhook_standin), "wecom", MESSAGE, T0) for _ in range(5)]
    started = time.monotonic()
    assert outbox.deliver_due(T0, send=quick(0.3)) == DeliveryCounts(0, 5)
    assert time.monotonic() - started < 1.5  # one 0.3 s timeout, not five
    errors = [outbox.item(id).last_error for id in ids]
    assert errors[0] == "timed out after 0.3 s" and set(errors[1:]) == {
        "put off: the host did not answer earlier in this run"}
    assert len(webhook_standin.received) == 1  # only the first was tried
    webhook_standin.mode = "ok"
    assert outbox.deliver_due(T0 + 30 * S, send=quick(0.3)) == DeliveryCounts(5, 0)  # nothing lost


def test_delivered_messages_are_forgotten_after_the_retention_time(outbox, webhook_standin):
    sent = outbox.enqueue("assigned", robot_url(webhook_standin), "wecom", MESSAGE, T0)
    waiting = outbox.enqueue("assigned", robot_url(webhook_standin), "wecom", MESSAGE, T0 + S)
    assert outbox.deliver_due(T0) == DeliveryCounts(1, 0)  # the second is not due yet
    assert outbox.prune(T0) == 0  # delivered at T0: not before it
    assert outbox.prune(T0 + S) == 1
    assert outbox.item(sent) is None and outbox.item(waiting) is not None  # undelivered: kept


def test_a_wecom_errcode_in_an_http_200_answer_is_a_failure(outbox, webhook_standin):
    webhook_standin.mode = "errcode"
    id = outbox.enqueue("assigned", robot_url(webhook_standin), "wecom", MESSAGE, T0)

    assert outbox.deliver_due(T0) == DeliveryCounts(0, 1)
    item = outbox.item(id)
    assert item.last_error.startswith("WeCom errcode 93000: invalid webhook url")
    assert (item.attempts, item.delivered_at) == (1, None)


def test_a_json_webhook_answering_200_is_delivered_whatever_it_says(outbox, webhook_standin):
    webhook_standin.mode = "errcode"  # an errcode means nothing to a plain JSON receiver
    outbox.enqueue("assigned", webhook_standin.url(), "json", MESSAGE, T0)

    assert outbox.deliver_due(T0) == DeliveryCounts(1, 0)


def test_a_redirect_is_a_failure_not_a_bodiless_get(outbox, webhook_standin):
    webhook_standin.mode = "redirect"
    id = outbox.enqueue("assigned", webhook_standin.url(), "json", MESSAGE, T0)

    assert outbox.deliver_due(T0) == DeliveryCounts(0, 1)
    assert outbox.item(id).last_error.startswith("redirected (HTTP 302)")
    assert [r.path for r in webhook_standin.received] == ["/cgi-bin/webhook/send"]  # /elsewhere not followed


@pytest.mark.parametrize("mode", ["down", "error500", "errcode", "hang"])
def test_last_error_never_holds_the_url_or_its_key(outbox, webhook_standin, mode):
    url = robot_url(webhook_standin)
    if mode == "down":
        webhook_standin.down()
    else:
        webhook_standin.mode = mode
    id = outbox.enqueue("assigned", url, "wecom", MESSAGE, T0)

    assert outbox.deliver_due(T0, send=quick(0.3)) == DeliveryCounts(0, 1)
    error = outbox.item(id).last_error
    assert error
    for secret in (SECRET_KEY, "key=", "127.0.0.1", "/cgi-bin/"):
        assert secret not in error


def test_a_send_that_echoes_the_url_is_redacted(outbox):
    url = f"https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key={SECRET_KEY}"
    id = outbox.enqueue("assigned", url, "wecom", MESSAGE, T0)

    def leaky(url, fmt, payload):
        raise DeliveryFailed(f"could not post to {url} (key {SECRET_KEY})\nretry later")

    assert outbox.deliver_due(T0, send=leaky) == DeliveryCounts(0, 1)
    assert outbox.item(id).last_error == "could not post to *** (key ***) retry later"


def test_one_failure_does_not_undo_the_others(outbox, webhook_standin):
    good_before = outbox.enqueue("a", webhook_standin.url(), "json", Message(title="before"), T0)
    bad = outbox.enqueue("b", webhook_standin.url("/broken"), "json", Message(title="bad"), T0 + S)
    good_after = outbox.enqueue("c", webhook_standin.url(), "json", Message(title="after"), T0 + 2 * S)

    def send(url, fmt, payload):
        if "/broken" in url:
            raise DeliveryFailed("HTTP 404")
        http_send(url, fmt, payload)

    assert outbox.deliver_due(T0 + 2 * S, send=send) == DeliveryCounts(2, 1)
    assert [body["title"] for body in webhook_standin.bodies] == ["before", "after"]
    assert outbox.item(good_before).delivered_at == T0 + 2 * S
    assert outbox.item(good_after).delivered_at == T0 + 2 * S
    assert (outbox.item(bad).attempts, outbox.item(bad).last_error) == (1, "HTTP 404")


def test_a_send_that_crashes_is_recorded_as_a_failure_and_the_rest_go_on(outbox, webhook_standin):
    crashing = outbox.enqueue("a", "https://hooks.example/bug", "json", Message(title="a"), T0)
    fine = outbox.enqueue("b", webhook_standin.url(), "json", Message(title="b"), T0 + S)

    def send(url, fmt, payload):
        if url.endswith("/bug"):
            raise KeyError("a bug")
        http_send(url, fmt, payload)

    assert outbox.deliver_due(T0 + S, send=send) == DeliveryCounts(1, 1)
    assert outbox.item(crashing).last_error == "send raised KeyError"
    assert outbox.item(crashing).next_attempt_at == T0 + S + 30 * S
    assert outbox.item(fine).delivered_at == T0 + S


def test_a_message_being_sent_is_not_claimed_by_another_tick(outbox, webhook_standin):
    """The claim is committed before the send: a second tick running meanwhile (here: from
    inside the first one's send) finds nothing due, so nothing is sent twice."""
    outbox.enqueue("assigned", webhook_standin.url(), "json", MESSAGE, T0)
    second_tick = []

    def send(url, fmt, payload):
        second_tick.append(outbox.deliver_due(T0 + 5 * S))
        http_send(url, fmt, payload)

    assert outbox.deliver_due(T0, send=send) == DeliveryCounts(1, 0)
    assert second_tick == [DeliveryCounts(0, 0)]
    assert len(webhook_standin.received) == 1


# -- formats and checks ------------------------------------------------------------------------

def test_wecom_content_is_cut_to_4096_utf8_bytes_keeping_title_link_and_mentions():
    lines = [f"第{i}行：公厕缺纸，请尽快补充。" for i in range(400)]  # ~14 000 bytes of mostly 3-byte characters
    message = Message(title="工单 #8", lines=lines, link="https://yizhan.example/w/8", mentions=["lisi"])

    content = format_payload("wecom", "assigned", message)["markdown"]["content"]

    size = len(content.encode("utf-8"))
    assert WECOM_MAX_CONTENT_BYTES - 3 <= size <= WECOM_MAX_CONTENT_BYTES  # full, but for a partial character
    assert content.startswith("**工单 #8**\n第0行：公厕缺纸，请尽快补充。\n第1行")
    assert content.endswith("…\n[查看详情](https://yizhan.example/w/8)\n<@lisi>")
    assert "\ufffd" not in content


def test_wecom_content_that_fits_is_not_cut():
    lines = ["缺" * 1000]  # 3000 bytes
    content = format_payload("wecom", "t", Message(title="T", lines=lines))["markdown"]["content"]
    assert content == "**T**\n" + "缺" * 1000


def test_wecom_markup_in_reported_text_is_neutralised():
    message = Message(title="<@all> 紧急", lines=["见 [这里](https://evil.example) <font color=\"warning\">x</font>"],
                      link="https://yizhan.example/w/(9) a")

    content = format_payload("wecom", "t", message)["markdown"]["content"]

    assert content == ("**＜@all＞ 紧急**\n"
                       "见 ［这里］(https://evil.example) ＜font color=\"warning\"＞x＜/font＞\n"
                       "[查看详情](https://yizhan.example/w/%289%29%20a)")


def test_wecom_mentions_must_be_wecom_user_ids():
    with pytest.raises(Invalid) as caught:
        format_payload("wecom", "t", Message(title="T", mentions=["13800001111 <@all>"]))
    assert caught.value.field == "mentions"


def test_unknown_format_is_refused(outbox):
    with pytest.raises(Invalid) as caught:
        outbox.enqueue("t", "https://hooks.example/x", "slack", MESSAGE, T0)
    assert caught.value.field == "webhook_format"
    assert outbox.due(T0) == []


def test_enqueue_refuses_a_url_that_cannot_be_a_webhook(outbox):
    with pytest.raises(Invalid):
        outbox.enqueue("t", "file:///etc/passwd", "json", MESSAGE, T0)
    assert outbox.due(T0) == []


@pytest.mark.parametrize("url", [
    "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=abc",
    "http://127.0.0.1:8080/hook",
    "  https://hooks.example/x  ",
])
def test_webhook_urls_accepted(url):
    assert validate_webhook_url(url) == url.strip()


@pytest.mark.parametrize("url", [
    None, "", "   ", "ftp://hooks.example/x", "file:///etc/passwd", "javascript:alert(1)", "https://",
    "https:///path-only", "hooks.example/x", "https://user:pw@hooks.example/x", "https://hooks.example:99999/x",
    "https://hooks.example/a b", "https://hooks.example/x\r\nHost: evil", "https://hooks.example/" + "a" * 1990,
])
def test_webhook_urls_refused(url):
    with pytest.raises(Invalid) as caught:
        validate_webhook_url(url)
    assert caught.value.field == "webhook_url"


def test_webhook_url_length_limit_is_2000_characters():
    base = "https://hooks.example/"
    assert validate_webhook_url(base + "a" * (2000 - len(base))) == base + "a" * (2000 - len(base))
    with pytest.raises(Invalid):
        validate_webhook_url(base + "a" * (2001 - len(base)))


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://hooks.example/x", "gopher://h/x", "/relative"])
def test_http_send_only_speaks_http(url):
    with pytest.raises(DeliveryFailed, match="not an http"):
        http_send(url, "json", {"topic": "t"})


def test_naive_times_are_refused(outbox):
    with pytest.raises(ValueError, match="no time zone"):
        outbox.enqueue("t", "https://hooks.example/x", "json", MESSAGE, datetime(2026, 3, 2, 9, 0))
