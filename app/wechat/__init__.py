"""WeChat JS-SDK: request signing, and the access token / jsapi_ticket they need.

WeChat rate-limits the token and ticket endpoints (a few thousand calls a day), so
both are cached server-wide (Redis when reachable, so every gunicorn worker shares
them; otherwise in this process) until shortly before they expire.
No Flask here: the API route passes configuration in.
"""
from __future__ import annotations

import hashlib
import json
import secrets
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass

# Refresh this long before WeChat's stated expiry, so a cached value is never stale in flight.
EXPIRY_MARGIN_S = 300
_TIMEOUT_S = 5


# errcodes meaning "this access_token is no longer valid" (e.g. another system refreshed it)
_TOKEN_REJECTED = {40001, 40014, 42001}


class WeChatError(RuntimeError):
    """WeChat's API answered with an error, or could not be reached."""

    def __init__(self, message: str, errcode: int | None = None):
        super().__init__(message)
        self.errcode = errcode


def sign(ticket: str, noncestr: str, timestamp: int | str, url: str) -> str:
    """The JS-SDK signature: sha1 over the four fields, sorted by name, joined as a query string.

    The url is the page's URL without its #fragment, exactly as the page sees it.
    """
    fields = {"jsapi_ticket": ticket, "noncestr": noncestr, "timestamp": str(timestamp), "url": url}
    text = "&".join(f"{key}={fields[key]}" for key in sorted(fields))
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


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
    """Signs pages for the JS-SDK, fetching and caching the token and ticket as needed."""

    def __init__(self, config: WeChatConfig, cache: TicketCache):
        self.config = config
        self.cache = cache
        self._fetch_lock = threading.RLock()  # the ticket fetch needs the token inside it

    def _get_json(self, path: str, params: dict) -> dict:
        url = f"{self.config.api_base.rstrip('/')}{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=_TIMEOUT_S) as resp:
                body = json.loads(resp.read().decode("utf-8"))
        except (OSError, ValueError) as exc:
            raise WeChatError(f"WeChat API unreachable: {exc}") from None
        if body.get("errcode"):
            raise WeChatError(f"WeChat API error {body.get('errcode')}: {body.get('errmsg')}", body.get("errcode"))
        return body

    def _cached(self, key: str, fetch) -> str:
        value = self.cache.get(key)
        if value:
            return value
        with self._fetch_lock:  # one fetch per process when many requests miss together
            value = self.cache.get(key)
            if value:
                return value
            value, expires_in = fetch()
            self.cache.set(key, value, int(expires_in) - EXPIRY_MARGIN_S)
            return value

    def access_token(self) -> str:
        def fetch():
            body = self._get_json("/cgi-bin/token", {
                "grant_type": "client_credential", "appid": self.config.app_id, "secret": self.config.app_secret,
            })
            return body["access_token"], body.get("expires_in", 7200)

        return self._cached(self._token_key(), fetch)

    def _token_key(self) -> str:
        return f"yizhan:wechat:{self.config.app_id}:access_token"

    def jsapi_ticket(self) -> str:
        def fetch():
            try:
                body = self._get_json("/cgi-bin/ticket/getticket", {"access_token": self.access_token(), "type": "jsapi"})
            except WeChatError as exc:
                if exc.errcode not in _TOKEN_REJECTED:
                    raise
                # Our cached token was revoked early: drop it and try once with a fresh one.
                self.cache.delete(self._token_key())
                body = self._get_json("/cgi-bin/ticket/getticket", {"access_token": self.access_token(), "type": "jsapi"})
            return body["ticket"], body.get("expires_in", 7200)

        return self._cached(f"yizhan:wechat:{self.config.app_id}:jsapi_ticket", fetch)

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
