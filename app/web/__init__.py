"""Pages. For now a plain landing page; the PWA arrives with its own issue."""
from flask import Blueprint, render_template

bp = Blueprint("web", __name__, template_folder="templates")


@bp.get("/")
def index():
    return render_template("index.html")


def init_app(app) -> None:
    app.register_blueprint(bp)
