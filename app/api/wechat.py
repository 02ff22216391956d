"""/api/v1/wechat: JS-SDK configuration for pages opened inside WeChat."""
from __future__ import annotations

from typing import Annotated

from flask import current_app, request
from pydantic import Field

from app.api import bodies
from app.api.blueprint import bp
from app.api.contract import Args, endpoint
from app.api.errors import ApiError
from app.wechat import WeChatBackoff, WeChatError, origin


class JsSdkArgs(Args):
    url: Annotated[str, Field(
        max_length=2000, pattern=r"^https?://[^/?#]+",
        description="A page of this site (YIZHAN_PUBLIC_URL's scheme, host and port), without its #fragment.")]


def _is_own_page(url: str) -> bool:
    """Whether ``url`` is on this site: YIZHAN_PUBLIC_URL's scheme, host and port.

    Without YIZHAN_PUBLIC_URL (development) the request's own Host decides, scheme not
    compared (behind an HTTPS proxy the app itself is spoken to in http). Any client can
    send any Host, so that only keeps other sites' pages from using ours; production sets
    YIZHAN_PUBLIC_URL.
    """
    page = origin(url)
    if page is None:
        return False
    public_url = current_app.config.get("YIZHAN_PUBLIC_URL")
    if public_url:
        return page == origin(public_url)
    return page == origin(f"{page[0]}://{request.host}")


@endpoint(bp, "/wechat/jssdk-config", query=JsSdkArgs, body=bodies.JsSdkConfig,
          errors={404: "WeChat is not configured.", 502: "WeChat's API did not answer.",
                  503: "WeChat failed moments ago and is being left alone; Retry-After says for how long."},
          summary="wx.config values for a page opened inside WeChat.")
def jssdk_config(args: JsSdkArgs):
    sdk = current_app.extensions.get("yizhan_wechat")
    if sdk is None:
        raise ApiError(404, "not_configured", "WeChat JS-SDK is not configured on this server.")
    if not _is_own_page(args.url):
        raise ApiError(400, "invalid_parameter", "'url' must be a page of this site.", "url")
    url = args.url.split("#", 1)[0]  # WeChat signs the URL without its fragment
    try:
        return sdk.page_config(url)
    except WeChatBackoff as exc:  # already logged when it failed
        raise ApiError(503, "upstream_backoff", "WeChat's API failed just now; the page works without it.",
                       retry_after_s=exc.retry_after_s) from None
    except WeChatError as exc:
        current_app.logger.error("WeChat JS-SDK signing failed: %s", exc)
        raise ApiError(502, "upstream_error", "WeChat's API did not answer; the page works without it.",
                       retry_after_s=exc.retry_after_s) from None
