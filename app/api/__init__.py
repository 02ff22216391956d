"""The JSON API under /api/v1."""
from app.api import errors, network, stations, wechat  # noqa: F401  (modules register their routes)
from app.api import search  # noqa: F401  (search by name)
from app.api import ratings  # noqa: F401  (after the stations it rates)
from app.api import ops  # noqa: F401  (the staff endpoints, after the public ones in the document)
from app.api import operators  # noqa: F401  (operators' live status pushes)
from app.api import sensors  # noqa: F401  (device readings and the staff endpoints of sensor cleaning)
from app.api.blueprint import bp


def init_app(app) -> None:
    app.register_blueprint(bp)
    errors.register(app, bp.url_prefix)
