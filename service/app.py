"""The WSGI app factory; gunicorn runs ``service.app:create_app()`` once per worker."""

from __future__ import annotations

from flask import Flask, Response
from werkzeug.exceptions import HTTPException

from service import response
from service.routes import STORE_KEY, blueprint
from service.settings import Settings
from service.store import RecommendationStore

_REASONS = {
    404: "not found: the API is GET /recommend/<userid>",
    405: "method not allowed: use GET",
}


def create_app(settings: Settings | None = None, store: RecommendationStore | None = None) -> Flask:
    """Build the app. Tests pass a ``store``; otherwise one is built from ``settings``, which
    default to the environment (that is what gunicorn's ``create_app()`` gets)."""
    if store is None:
        store = RecommendationStore.from_settings(settings or Settings.from_env())
    app = Flask(__name__)
    app.extensions[STORE_KEY] = store
    app.register_blueprint(blueprint)
    app.register_error_handler(HTTPException, _plain_http_error)
    return app


def _plain_http_error(exc: HTTPException) -> Response:
    """Werkzeug's errors are HTML pages; callers and logs want one line of text. The rest of
    the error response (the ``Allow`` header of a 405) is kept. An unhandled exception reaches
    here too, as ``InternalServerError``, after Flask has logged its traceback."""
    answer = exc.get_response()
    answer.set_data(_REASONS.get(exc.code or 500, (exc.name or "error").lower()))
    answer.content_type = response.CONTENT_TYPE
    return answer
