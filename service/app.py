"""The WSGI app factory; gunicorn runs ``service.app:create_app()`` once per worker.

Each worker builds its own store (Redis pool, cached routing table, fallback list) and
request log after the fork, so nothing with a socket or a thread crosses ``fork()``. Every
request is counted and timed by route and status in ``before_request``/``after_request``.
"""

from __future__ import annotations

import time

from flask import Flask, Response, g, request
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response as WerkzeugResponse

from contracts import response
from service import api, docs, ops, prom
from service.lookup import RecommendationStore
from service.requestlog import RequestLog
from service.settings import Settings

_REASONS = {
    404: "not found: the API is GET /recommend/<userid>",
    405: "method not allowed: use GET",
}


def create_app(
    settings: Settings | None = None,
    store: RecommendationStore | None = None,
    request_log: RequestLog | None = None,
) -> Flask:
    """Build the app. Tests may pass a ``store`` or ``request_log``; the rest is built from
    ``settings``, which default to the environment (that is what gunicorn's call gets).
    Raises ``store.FallbackError`` if the fallback list is unusable: better no start than
    a service that has nothing to say during an outage."""
    if store is None or request_log is None:
        settings = settings or Settings.from_env()
        store = store or RecommendationStore.from_settings(settings)
        request_log = request_log or RequestLog.from_settings(settings)
    app = Flask(__name__)
    app.extensions[api.STORE_KEY] = store
    app.extensions[api.REQUEST_LOG_KEY] = request_log
    app.register_blueprint(api.blueprint)
    app.register_blueprint(ops.blueprint)
    app.register_blueprint(docs.blueprint)
    app.register_error_handler(HTTPException, _plain_http_error)
    app.before_request(_start_clock)
    app.after_request(_count)
    return app


def close_app(app: Flask) -> None:
    """Flush the request log and close the Redis pool (gunicorn's ``worker_exit``)."""
    app.extensions[api.REQUEST_LOG_KEY].close()
    app.extensions[api.STORE_KEY].close()


def _start_clock() -> None:
    g.started = time.perf_counter()


def _count(resp: Response) -> Response:
    rule = request.url_rule
    route = rule.rule if rule is not None else prom.UNMATCHED_ROUTE
    started = g.get("started")
    elapsed = time.perf_counter() - started if started is not None else 0.0
    prom.observe_request(route, resp.status_code, elapsed)
    return resp


def _plain_http_error(exc: HTTPException) -> WerkzeugResponse:
    """Werkzeug's errors are HTML pages; callers and logs want one line of text. The rest of
    the error response (the ``Allow`` header of a 405) is kept. An unhandled exception reaches
    here too, as ``InternalServerError``, after Flask has logged its traceback."""
    answer = exc.get_response()
    answer.set_data(_REASONS.get(exc.code or 500, (exc.name or "error").lower()))
    answer.content_type = response.CONTENT_TYPE
    return answer
