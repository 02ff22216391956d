"""The notification outbox: webhook messages written in the same transaction as the change they
announce, delivered later by the tick, retried with backoff until they get through.

A message is formatted when it is enqueued (``payload`` is the exact JSON body that will be
sent), so later changes to the work order or the organisation's settings do not change it.

Formats:

* ``wecom`` — a WeCom (企业微信) group robot: POST ``{"msgtype": "markdown", "markdown":
  {"content": ...}}`` to ``https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=KEY``. The robot
  answers HTTP 200 with ``{"errcode": 0, "errmsg": "ok"}``; any other errcode is a failure even
  with HTTP 200. Content is at most 4096 bytes of UTF-8. Mentions are written ``<@userid>`` and
  need WeCom user ids (the 企业微信 account id, not a phone number or an email).
* ``json`` — ``{"topic", "title", "text", "link", "data"}`` for anything else.

Delivery is at least once: a message is *claimed* in a short transaction (its next attempt
pushed out by a lease), sent with no transaction open, and its outcome recorded in another
short transaction. A second tick process never claims a message that is being sent: on
PostgreSQL the claim skips rows another claim has locked (``FOR UPDATE SKIP LOCKED``; without it
two concurrent claims can take the same row) and later claims see the lease; on SQLite the claim
is one write statement, and SQLite's single write lock (write transactions begin IMMEDIATE, see
app/stations/sqlite.py) lets one claim run at a time, so the next sees the lease. No lock is held
while sending. Only a process that dies between sending and recording sends a message twice
(after the lease runs out).

The webhook URL is a secret (a WeCom robot's key is in its query string; other services put a
token in the path): it is never logged, never put in ``last_error``, and left out of reprs.
"""
from __future__ import annotations

import http.client
import json
import logging
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import text

from app.dbtime import from_db, to_db
from app.ops.errors import Invalid

log = logging.getLogger(__name__)

FORMATS = ("wecom", "json")
SCHEMES = ("http", "https")
MAX_URL_LENGTH = 2000
WECOM_MAX_CONTENT_BYTES = 4096
# A WeCom user id: letters, digits and _ - . @, at most 64 characters (企业微信 "账号").
_WECOM_USERID = re.compile(r"[A-Za-z0-9_.@-]{1,64}")
_TITLE_MAX_BYTES = 512
_ELLIPSIS = "…"

FIRST_RETRY = timedelta(seconds=30)
MAX_RETRY = timedelta(hours=1)
# How long a claimed message is kept from other ticks while it is being sent. A batch sends at
# most `limit` messages with a short timeout each (50 × 3 s), far less than this; only a tick
# that dies mid-send leaves a lease to run out.
CLAIM_LEASE = timedelta(minutes=10)
SEND_TIMEOUT_S = 3.0
_MAX_ANSWER_BYTES = 64 * 1024
_MAX_ERROR_CHARS = 300


class DeliveryFailed(Exception):
    """A send that did not get through; ``reason`` is short and holds no part of the URL.
    ``unreachable``: the host did not answer at all (refused, timed out), so the rest of this
    run's messages to it are put off instead of each waiting out its own timeout."""

    def __init__(self, reason: str, unreachable: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.unreachable = unreachable


@dataclass(frozen=True)
class Message:
    """What a notification says. Title and lines are plain text (markup in them is neutralised
    in the WeCom format); ``mentions`` are WeCom user ids; ``data`` goes only into the JSON format."""

    title: str
    lines: list[str] = field(default_factory=list)
    link: str | None = None
    mentions: list[str] = field(default_factory=list)
    data: dict = field(default_factory=dict)
    link_text: str = "查看详情"


@dataclass(frozen=True)
class OutboxItem:
    id: int
    created_at: datetime
    topic: str
    url: str = field(repr=False)  # holds the webhook's secret
    format: str
    payload: dict
    attempts: int  # sends tried, the successful one included
    next_attempt_at: datetime
    delivered_at: datetime | None
    last_error: str | None


@dataclass(frozen=True)
class DeliveryCounts:
    delivered: int
    failed: int


def backoff(attempts: int) -> timedelta:
    """The wait after the ``attempts``-th failed send: 30 s, doubling, at most 1 h (never gives up)."""
    if attempts < 1:
        raise ValueError(f"attempts must be at least 1, got {attempts}")
    doublings = min(attempts - 1, 16)  # 30 s × 2**7 already passes the cap
    return min(FIRST_RETRY * 2**doublings, MAX_RETRY)


def validate_webhook_url(url) -> str:
    """The URL, stripped, if it can be a webhook: http(s), a host, no user info, ≤ 2000 characters."""
    if not isinstance(url, str) or not url.strip():
        raise Invalid("webhook URL is empty", field="webhook_url")
    url = url.strip()
    if len(url) > MAX_URL_LENGTH:
        raise Invalid(f"webhook URL is longer than {MAX_URL_LENGTH} characters", field="webhook_url")
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
        raise Invalid("webhook URL contains spaces or control characters", field="webhook_url")
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number or out of range
    except ValueError:
        raise Invalid("webhook URL is malformed", field="webhook_url") from None
    if parts.scheme.lower() not in SCHEMES:
        raise Invalid("webhook URL must start with http:// or https://", field="webhook_url")
    if not parts.hostname:
        raise Invalid("webhook URL has no host", field="webhook_url")
    if "@" in parts.netloc:
        # urllib would not send these as credentials; put the secret in the path or query.
        raise Invalid("webhook URL must not contain user info (user@host)", field="webhook_url")
    return url


# -- formats -----------------------------------------------------------------

def format_payload(fmt: str, topic: str, message: Message) -> dict:
    """The JSON body a message is sent as, in the webhook's format."""
    if fmt == "wecom":
        return {"msgtype": "markdown", "markdown": {"content": _wecom_markdown(message)}}
    if fmt == "json":
        return {"topic": topic, "title": message.title, "text": "\n".join(message.lines),
                "link": message.link, "data": message.data}
    raise Invalid(f"unknown webhook format {fmt!r}; expected one of {', '.join(FORMATS)}",
                  field="webhook_format")


# Characters WeCom markdown would read as markup in text that came from reporters or staff:
# '<' starts a mention (<@all> pings a whole group) or a <font> tag, '[' a link. Their
# full-width forms look the same to a reader and mean nothing to the renderer.
_NEUTRAL = str.maketrans({"<": "＜", ">": "＞", "[": "［", "]": "］"})


def _plain(value: str) -> str:
    return str(value).translate(_NEUTRAL)


def _utf8_size(value: str) -> int:
    return len(value.encode("utf-8"))


def _cut(value: str, max_bytes: int) -> str:
    """``value`` cut to at most ``max_bytes`` of UTF-8, never inside a character, marked with '…'."""
    if _utf8_size(value) <= max_bytes:
        return value
    room = max_bytes - _utf8_size(_ELLIPSIS)
    if room <= 0:
        return ""
    # Decoding with "ignore" drops only the partial character the byte cut may leave at the end.
    return value.encode("utf-8")[:room].decode("utf-8", "ignore") + _ELLIPSIS


def _wecom_markdown(message: Message) -> str:
    """Bold title, the lines, the link, the mentions; the lines give way if it is too long."""
    head = f"**{_cut(' '.join(_plain(message.title).split()), _TITLE_MAX_BYTES)}**"  # one line
    tail = []
    if message.link:
        if urllib.parse.urlsplit(message.link).scheme.lower() not in SCHEMES:
            raise Invalid("a message's link must be an http(s) URL", field="link")
        # ( ) and spaces would end the markdown link early; everything else a URL needs stays.
        target = urllib.parse.quote(message.link, safe=":/?#&=%+,;~!$'*@.-_")
        tail.append(f"[{_plain(message.link_text)}]({target})")
    for userid in message.mentions:
        if not _WECOM_USERID.fullmatch(userid):
            raise Invalid(f"{userid!r} is not a WeCom user id", field="mentions")
    if message.mentions:
        tail.append(" ".join(f"<@{userid}>" for userid in message.mentions))
    fixed = "\n".join([head, *tail])
    body = "\n".join(_plain(line) for line in message.lines)
    if not body:
        return _cut(fixed, WECOM_MAX_CONTENT_BYTES)
    room = WECOM_MAX_CONTENT_BYTES - _utf8_size(fixed) - 1  # the newline before the body
    if room < _utf8_size(_ELLIPSIS) + 1:  # no room for any of the body: keep title, link, mentions
        return _cut(fixed, WECOM_MAX_CONTENT_BYTES)
    return "\n".join([head, _cut(body, room), *tail])


# -- sending -----------------------------------------------------------------

class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is a failure: urllib would turn the POST into a bodiless GET, and a webhook
    URL should name the endpoint itself (nor may it lead the tick to another host)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        raise DeliveryFailed(f"redirected (HTTP {code}); set the webhook URL to the final address")


_OPENER = urllib.request.build_opener(_NoRedirects)


def http_send(url: str, fmt: str, payload: dict, timeout: float = SEND_TIMEOUT_S) -> None:
    """POST ``payload`` as UTF-8 JSON; raises DeliveryFailed unless the webhook took it."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme.lower() not in SCHEMES or not parts.hostname:
        raise DeliveryFailed("not an http(s) URL")
    body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
    request = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": "application/json; charset=utf-8", "User-Agent": "yizhan-outbox/1"})
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            answer = response.read(_MAX_ANSWER_BYTES)
    except urllib.error.HTTPError as exc:  # a non-2xx answer
        exc.close()
        raise DeliveryFailed(f"HTTP {exc.code}") from None
    except urllib.error.URLError as exc:  # DNS, refused, TLS...: the reason names no URL
        raise DeliveryFailed(f"unreachable: {_exception_text(exc.reason)}", unreachable=True) from None
    except TimeoutError:
        raise DeliveryFailed(f"timed out after {timeout:g} s", unreachable=True) from None
    except (OSError, http.client.HTTPException, ValueError) as exc:  # reset, bad status line...
        raise DeliveryFailed(f"failed: {_exception_text(exc)}") from None
    if fmt == "wecom":
        _check_wecom_answer(answer)


def _exception_text(exc) -> str:
    if isinstance(exc, TimeoutError) or str(exc) == "timed out":
        return "timed out"
    return str(exc) or type(exc).__name__


def _check_wecom_answer(answer: bytes) -> None:
    try:
        reply = json.loads(answer.decode("utf-8"))
    except ValueError:
        raise DeliveryFailed("WeCom answered with something other than JSON") from None
    if not isinstance(reply, dict) or "errcode" not in reply:
        raise DeliveryFailed("WeCom answered without an errcode")
    if reply["errcode"] != 0:
        errmsg = str(reply.get("errmsg", ""))[:120]
        raise DeliveryFailed(f"WeCom errcode {reply['errcode']}: {errmsg}")


def _redact(reason: str, url: str) -> str:
    """``reason`` without any part of the URL that may be secret, short, on one line.

    http_send's reasons name no URL; this guards against any ``send`` (or a server's errmsg)
    that echoes it."""
    parts = urllib.parse.urlsplit(url)
    secrets = [url, parts.query, parts.path if len(parts.path) > 1 else ""]
    secrets += [value for _, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)]
    for secret in sorted(filter(None, set(secrets)), key=len, reverse=True):
        reason = reason.replace(secret, "***")
    reason = " ".join(reason.split())
    return reason if len(reason) <= _MAX_ERROR_CHARS else reason[: _MAX_ERROR_CHARS - 1] + _ELLIPSIS


def _endpoint(url: str) -> tuple:
    parts = urllib.parse.urlsplit(url)
    return parts.hostname, parts.port, parts.scheme


def _host(url: str) -> str:
    """The part of a webhook URL that may be logged."""
    return urllib.parse.urlsplit(url).hostname or "?"


# -- the table ---------------------------------------------------------------

_COLUMNS = ("id, created_at, topic, url, format, payload, attempts, next_attempt_at, delivered_at,"
            " last_error")
_PENDING = "delivered_at IS NULL AND next_attempt_at <= :now"


def _item(row) -> OutboxItem:
    m = row._mapping
    return OutboxItem(
        id=m["id"], created_at=from_db(m["created_at"]), topic=m["topic"], url=m["url"],
        format=m["format"], payload=json.loads(m["payload"]), attempts=m["attempts"],
        next_attempt_at=from_db(m["next_attempt_at"]), delivered_at=from_db(m["delivered_at"]),
        last_error=m["last_error"],
    )


class Outbox:
    """Webhook messages in the ``outbox`` table, on the station store's connection."""

    def __init__(self, stations):
        self._stations = stations

    def enqueue(self, topic: str, url: str, fmt: str, message: Message, now: datetime) -> int:
        """Add a message, due at once; joins the caller's transaction, so it is sent only if
        the change it announces is committed."""
        url = validate_webhook_url(url)
        payload = json.dumps(format_payload(fmt, topic, message), ensure_ascii=False)
        with self._stations.transaction() as conn:
            stamp = to_db(now, conn.dialect.name)
            return conn.execute(text(
                "INSERT INTO outbox (created_at, topic, url, format, payload, attempts, next_attempt_at)"
                " VALUES (:now, :topic, :url, :format, :payload, 0, :now) RETURNING id"
            ), {"now": stamp, "topic": topic, "url": url, "format": fmt, "payload": payload}).scalar_one()

    def due(self, now: datetime, limit: int = 50) -> list[OutboxItem]:
        """Undelivered messages whose next attempt is due, oldest first."""
        with self._stations.reading() as conn:
            rows = conn.execute(text(
                f"SELECT {_COLUMNS} FROM outbox WHERE {_PENDING} ORDER BY created_at, id LIMIT :limit"
            ), {"now": to_db(now, conn.dialect.name), "limit": limit})
            return [_item(row) for row in rows]

    def item(self, id: int) -> OutboxItem | None:
        with self._stations.reading() as conn:
            row = conn.execute(text(f"SELECT {_COLUMNS} FROM outbox WHERE id = :id"), {"id": id}).first()
            return _item(row) if row else None

    def deliver_due(self, now: datetime, send=http_send, limit: int = 50) -> DeliveryCounts:
        """Send the due messages (oldest first, at most ``limit``) and record each outcome.

        Call it with no transaction open (the tick does): sends must not wait inside one, and
        each outcome is committed on its own, so one failure undoes nothing else.
        ``send(url, fmt, payload)`` raises DeliveryFailed when a message did not get through.
        """
        delivered = failed = 0
        silent_hosts: set[tuple] = set()  # (host, port)s that did not answer in this run
        for item in self._claim(now, limit):
            try:
                if _endpoint(item.url) in silent_hosts:
                    raise DeliveryFailed("put off: the host did not answer earlier in this run")
                send(item.url, item.format, item.payload)
            except DeliveryFailed as exc:
                reason = exc.reason
                if exc.unreachable:
                    silent_hosts.add(_endpoint(item.url))
            except Exception as exc:  # a bug in a send must not stop every later message
                log.exception("outbox message %s: send raised", item.id)
                reason = f"send raised {type(exc).__name__}"
            else:
                self._record_delivered(item, now)
                delivered += 1
                continue
            reason = _redact(reason, item.url)
            wait = self._record_failed(item, now, reason)
            log.warning("outbox message %s (%s) to %s failed, attempt %s, retry in %s: %s",
                        item.id, item.topic, _host(item.url), item.attempts + 1, wait, reason)
            failed += 1
        return DeliveryCounts(delivered, failed)

    def prune(self, delivered_before: datetime) -> int:
        """Forget messages delivered before then (they may name staff); undelivered ones stay."""
        with self._stations.transaction() as conn:
            return conn.execute(text("DELETE FROM outbox WHERE delivered_at IS NOT NULL AND delivered_at < :before"),
                                {"before": to_db(delivered_before, conn.dialect.name)}).rowcount

    def _claim(self, now: datetime, limit: int) -> list[OutboxItem]:
        """Take the due messages for this tick: their next attempt moves a lease ahead, so no
        other tick takes them while they are being sent (see the module's docstring)."""
        with self._stations.transaction() as conn:
            dialect = conn.dialect.name
            skip_locked = " FOR UPDATE SKIP LOCKED" if dialect == "postgresql" else ""
            rows = conn.execute(text(
                f"UPDATE outbox SET next_attempt_at = :lease WHERE id IN ("
                f"SELECT id FROM outbox WHERE {_PENDING} ORDER BY created_at, id LIMIT :limit{skip_locked})"
                f" RETURNING {_COLUMNS}"
            ), {"now": to_db(now, dialect), "lease": to_db(now + CLAIM_LEASE, dialect), "limit": limit})
            items = [_item(row) for row in rows]
        return sorted(items, key=lambda item: (item.created_at, item.id))  # RETURNING has no order

    def _record_delivered(self, item: OutboxItem, now: datetime) -> None:
        with self._stations.transaction() as conn:
            conn.execute(text(
                "UPDATE outbox SET attempts = attempts + 1, delivered_at = :now"
                " WHERE id = :id AND delivered_at IS NULL"
            ), {"id": item.id, "now": to_db(now, conn.dialect.name)})

    def _record_failed(self, item: OutboxItem, now: datetime, reason: str) -> timedelta:
        wait = backoff(item.attempts + 1)
        with self._stations.transaction() as conn:
            conn.execute(text(
                "UPDATE outbox SET attempts = attempts + 1, last_error = :error, next_attempt_at = :next"
                " WHERE id = :id AND delivered_at IS NULL"
            ), {"id": item.id, "error": reason, "next": to_db(now + wait, conn.dialect.name)})
        return wait
