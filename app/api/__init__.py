"""The JSON API under /api/v1."""
from app.api import errors
from app.api.routes import bp


def init_app(app) -> None:
    app.register_blueprint(bp)
    errors.register(app, bp.url_prefix)
