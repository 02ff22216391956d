"""WeChat JS-SDK: request signing, and the access token / jsapi_ticket they need.

WeChat rate-limits the token and ticket endpoints (a few thousand calls a day), so
both are cached server-wide (Redis when reachable, so every gunicorn worker shares
them; otherwise in this process) until shortly before they expire. Failures are
remembered the same way: after one, nobody asks WeChat again until a backoff has
passed (doubling with each failure in a row), so a silent WeChat holds no worker for
long and an error answer (e.g. a wrong secret) does not use up the day's quota.
No Flask here: the API route passes configuration in.
"""
from __future__ import annotations

import hashlib
import json
import math
import secrets
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Callable

# Refresh this long before WeChat's stated expiry, so a cached value is never stale in flight.
EXPIRY_MARGIN_S = 300
# Every WeChat call one signing needs (token, ticket, one retry) shares this budget: a
# signing is waited for by a page load and holds a worker.
UPSTREAM_BUDGET_S = 2.0
# After a failure WeChat is left alone this long, doubled for each further failure in a
# row up to the cap: at most 24 * 3600 / 600 = 144 calls a day while it keeps failing.
FIRST_BACKOFF_S = 5
MAX_BACKOFF_S = 600
DEFAULT_PORTS = {"http": 80, "https": 443}

# errcodes meaning "this access_token is no longer valid" (e.g. another system refreshed it)
_TOKEN_REJECTED = {40001, 40014, 42001}


class WeChatError(RuntimeError):
    """WeChat's API answered with an error, or could not be reached.

    ``retry_after_s`` says how long WeChat is now left alone (set once the failure is recorded).
    """

    def __init__(self, message: str, errcode: int | None = None, retry_after_s: int | None = None):
        super().__init__(message)
        self.errcode = errcode
        self.retry_after_s = retry_after_s


class WeChatBackoff(WeChatError):
    """WeChat failed recently and its backoff has not passed: it was not asked this time."""


def sign(ticket: str, noncestr: str, timestamp: int | str, url: str) -> str:
    """The JS-SDK signature: sha1 over the four fields, sorted by name, joined as a query string.

    The url is the page's URL without its #fragment, exactly as the page sees it.
    """
    fields = {"jsapi_ticket": ticket, "noncestr": noncestr, "timestamp": str(timestamp), "url": url}
    text = "&".join(f"{key}={fields[key]}" for key in sorted(fields))
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def origin(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an http(s) URL, with the default port filled in; None if not one.

    URLs with user info (``https://a@b/``) are not origins we sign: browsers and Python
    disagree on where their host starts.
    """
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError:  # a port that is not a number, or out of range
        return None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname or "@" in parts.netloc:
        return None
    return scheme, parts.hostname, port if port is not None else DEFAULT_PORTS[scheme]


class TicketCache:
    """A small expiring key-value cache: Redis if given and reachable, else this process."""

    def __init__(self, redis_url: str | None = None):
        self._local: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()
        self._redis = None
        if redis_url:
            try:
                import redis

                client = redis.Redis.from_url(redis_url, socket_connect_timeout=0.5, socket_timeout=0.5)
                client.ping()
                self._redis = client
            except Exception:  # no Redis: fall back to this process
                self._redis = None

    @property
    def shared(self) -> bool:
        return self._redis is not None

    def get(self, key: str) -> str | None:
        if self._redis is not None:
            try:
                value = self._redis.get(key)
                return value.decode() if value is not None else None
            except Exception:
                pass
        with self._lock:
            hit = self._local.get(key)
            if hit and hit[1] > time.time():
                return hit[0]
        return None

    def delete(self, key: str) -> None:
        if self._redis is not None:
            try:
                self._redis.delete(key)
            except Exception:
                pass
        with self._lock:
            self._local.pop(key, None)

    def set(self, key: str, value: str, ttl_s: int) -> None:
        ttl_s = max(1, ttl_s)
        if self._redis is not None:
            try:
                self._redis.set(key, value, ex=ttl_s)
                return
            except Exception:
                pass
        with self._lock:
            self._local[key] = (value, time.time() + ttl_s)


@dataclass(frozen=True)
class WeChatConfig:
    app_id: str
    app_secret: str
    api_base: str = "https://api.weixin.qq.com"


class JsSdk:
    """Signs pages for the JS-SDK, fetching and caching the token and ticket as needed.

    ``key_prefix`` namespaces the cache keys; ``clock`` (seconds since the epoch) times the backoff.
    """

    def __init__(self, config: WeChatConfig, cache: TicketCache, key_prefix: str = "yizhan:wechat:",
                 clock: Callable[[], float] = time.time):
        self.config = config
        self.cache = cache
        self.key_prefix = key_prefix
        self._clock = clock
        self._fetch_lock = threading.Lock()  # one fetch per process when many requests miss together
        # The failure record is keyed by the credentials too, so a corrected secret (or API
        # base) is tried at once rather than after the old one's backoff.
        credentials = hashlib.sha256(f"{config.app_secret}\n{config.api_base}".encode()).hexdigest()[:12]
        self._failures_key = self._key(f"upstream_failures:{credentials}")

    def _key(self, name: str) -> str:
        return f"{self.key_prefix}{self.config.app_id}:{name}"

    def _get_json(self, path: str, params: dict, deadline: float) -> dict:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise WeChatError(f"WeChat API did not answer within {UPSTREAM_BUDGET_S:g} s")
        url = f"{self.config.api_base.rstrip('/')}{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=remaining) as resp:
                body = json.loads(resp.read().decode("utf-8"))
        except (OSError, ValueError) as exc:  # timeouts and HTTP errors are OSErrors
            raise WeChatError(f"WeChat API unreachable: {exc}") from None
        if not isinstance(body, dict):
            raise WeChatError(f"WeChat API answered {path} with something other than an object")
        if body.get("errcode"):
            raise WeChatError(f"WeChat API error {body.get('errcode')}: {body.get('errmsg')}", body.get("errcode"))
        return body

    def _cache_answer(self, key: str, body: dict, field: str) -> str:
        """Cache ``body[field]`` until shortly before the answer's expires_in; return it."""
        value, expires_in = body.get(field), body.get("expires_in", 7200)
        if not isinstance(value, str) or not value or not isinstance(expires_in, int):
            raise WeChatError(f"WeChat API answer without a usable {field}")
        self.cache.set(key, value, expires_in - EXPIRY_MARGIN_S)
        return value

    def _access_token(self, deadline: float) -> str:
        token = self.cache.get(self._key("access_token"))
        if token:
            return token
        body = self._get_json("/cgi-bin/token", {
            "grant_type": "client_credential", "appid": self.config.app_id, "secret": self.config.app_secret,
        }, deadline)
        return self._cache_answer(self._key("access_token"), body, "access_token")

    def _fetch_ticket(self, deadline: float) -> str:
        def ask(token: str) -> dict:
            return self._get_json("/cgi-bin/ticket/getticket", {"access_token": token, "type": "jsapi"}, deadline)

        token = self._access_token(deadline)  # its failures are final: no second token call
        try:
            body = ask(token)
        except WeChatError as exc:
            if exc.errcode not in _TOKEN_REJECTED:
                raise
            # Our cached token was revoked early: drop it and try once with a fresh one.
            self.cache.delete(self._key("access_token"))
            body = ask(self._access_token(deadline))
        return self._cache_answer(self._key("jsapi_ticket"), body, "ticket")

    def jsapi_ticket(self) -> str:
        """The cached ticket, else one from WeChat (raises WeChatBackoff while backing off)."""
        ticket = self.cache.get(self._key("jsapi_ticket"))
        if ticket:
            return ticket
        with self._fetch_lock:
            ticket = self.cache.get(self._key("jsapi_ticket"))
            if ticket:
                return ticket
            self._refuse_while_backing_off()
            try:
                ticket = self._fetch_ticket(time.monotonic() + UPSTREAM_BUDGET_S)
            except WeChatError as exc:
                exc.retry_after_s = self._record_failure(exc)
                raise
            self.cache.delete(self._failures_key)
            return ticket

    def _failures(self) -> dict | None:
        try:
            record = json.loads(self.cache.get(self._failures_key) or "null")
        except ValueError:
            return None
        if isinstance(record, dict) and {"failures", "until", "error"} <= record.keys():
            return record
        return None

    def _refuse_while_backing_off(self) -> None:
        record = self._failures()
        if record is None:
            return
        wait = record["until"] - self._clock()
        if wait > 0:
            raise WeChatBackoff(
                f"WeChat failed {record['failures']} time(s) in a row (last: {record['error']}); "
                f"next try in {math.ceil(wait)} s",
                retry_after_s=math.ceil(wait),
            )

    def _record_failure(self, exc: WeChatError) -> int:
        """Remember one more failure in a row; return how long WeChat is now left alone."""
        previous = self._failures()
        failures = (previous["failures"] if previous else 0) + 1
        delay = min(FIRST_BACKOFF_S * 2 ** (failures - 1), MAX_BACKOFF_S)
        record = {"failures": failures, "until": self._clock() + delay, "error": str(exc)}
        # Kept past the wait, so the next failure doubles the wait instead of starting over.
        self.cache.set(self._failures_key, json.dumps(record), delay + MAX_BACKOFF_S)
        return delay

    def page_config(self, url: str, now: int | None = None, nonce: str | None = None) -> dict:
        """What wx.config needs for the page at ``url`` (without its #fragment)."""
        timestamp = int(now if now is not None else time.time())
        noncestr = nonce or secrets.token_urlsafe(12)
        return {
            "appId": self.config.app_id,
            "timestamp": timestamp,
            "nonceStr": noncestr,
            "signature": sign(self.jsapi_ticket(), noncestr, timestamp, url),
        }
