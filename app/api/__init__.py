"""The JSON API under /api/v1."""
from app.api import errors, network, stations, wechat  # noqa: F401  (modules register their routes)
from app.api.blueprint import bp


def init_app(app) -> None:
    app.register_blueprint(bp)
    errors.register(app, bp.url_prefix)
