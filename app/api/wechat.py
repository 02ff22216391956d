"""/api/v1/wechat: JS-SDK configuration for pages opened inside WeChat."""
from __future__ import annotations

from urllib.parse import urlsplit

from flask import current_app, jsonify, request

from app.api.blueprint import bp
from app.api.errors import ApiError
from app.wechat import WeChatError


@bp.get("/wechat/jssdk-config")
def jssdk_config():
    sdk = current_app.extensions.get("yizhan_wechat")
    if sdk is None:
        raise ApiError(404, "not_configured", "WeChat JS-SDK is not configured on this server.")
    url = (request.args.get("url") or "").strip()
    if not url:
        raise ApiError(400, "missing_parameter", "'url' is required: the page URL without its #fragment.", "url")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or len(url) > 2000:
        raise ApiError(400, "invalid_parameter", "'url' must be the page's http(s) URL.", "url")
    url = url.split("#", 1)[0]  # WeChat signs the URL without its fragment
    try:
        return jsonify(sdk.page_config(url))
    except WeChatError as exc:
        current_app.logger.error("WeChat JS-SDK signing failed: %s", exc)
        raise ApiError(502, "upstream_error", "WeChat's API did not answer; the page works without it.") from None
