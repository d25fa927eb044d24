"""The movie app's endpoint: ``GET /recommend/<userid>``.

User IDs are accepted only in canonical form, ``[1-9][0-9]{0,18}`` and at most 2^63 - 1
(``contracts.userid``: the ingest grammar's rule too), so each user has exactly one URL and
one Redis key. ``01`` is rejected rather than read as 1: the caller never sends it, and
accepting it would mean two spellings of one user in the request logs. Any other ID, however
long, is a one-line 400; a request line past gunicorn's 4094-byte limit never reaches the
app, and the worker class (``service.worker``) answers it with a one-line 400 too.

The body is the stored bytes as they are (text/plain, the contract); ``Accept:
application/json`` gets the same list as a JSON object. Headers name the model version, the
A/B variant and where the list came from. The store never fails, so a valid ID is always 200.
"""

from __future__ import annotations

import json
import time

from flask import Blueprint, Response, current_app, request

from contracts import response
from contracts.response import SOURCE_HEADER, VARIANT_HEADER, VERSION_HEADER
from contracts.userid import BAD_USER_ID, parse_user_id
from service.lookup import Answer, RecommendationStore
from service.requestlog import RequestLog

STORE_KEY = "recommendation_store"  # where create_app puts the store in app.extensions
REQUEST_LOG_KEY = "request_log"  # and the request log
JSON_TYPE = "application/json"
_OFFERS = (response.CONTENT_TYPE.partition(";")[0], JSON_TYPE)  # text first: the default

blueprint = Blueprint("api", __name__)


def text(
    body: str | bytes, status: int = 200, headers: list[tuple[str, str]] | None = None
) -> Response:
    """Every text answer of this service, errors included, is one line of text/plain."""
    return Response(body, status=status, headers=headers, content_type=response.CONTENT_TYPE)


@blueprint.get("/recommend/<userid>")
def recommend(userid: str) -> Response:
    started = time.perf_counter()
    user_id = parse_user_id(userid)
    extensions = current_app.extensions  # one proxy lookup: this is the hot path
    answer = None
    if user_id is None:
        resp = text(BAD_USER_ID, 400)
    else:
        store: RecommendationStore = extensions[STORE_KEY]
        answer = store.recommend(user_id)
        headers = [
            (VERSION_HEADER, answer.version),
            (VARIANT_HEADER, answer.variant),
            (SOURCE_HEADER, answer.source),
            ("Vary", "Accept"),
        ]
        if _wants_json():
            resp = _json(user_id, answer)
            resp.headers.extend(headers)
        else:
            resp = text(answer.body, headers=headers)
    requests_log: RequestLog = extensions[REQUEST_LOG_KEY]
    if requests_log.enabled:
        requests_log.record(user_id, resp.status_code, time.perf_counter() - started, answer)
    return resp


def _wants_json() -> bool:
    """Only a JSON preference; no Accept, */* or text/plain keep the contract's text. The two
    usual cases skip parsing the header on the hot path."""
    accept = request.headers.get("Accept")
    if not accept or accept == "*/*":
        return False
    return request.accept_mimetypes.best_match(_OFFERS) == JSON_TYPE


def _json(user_id: int, answer: Answer) -> Response:
    document = {
        "user": user_id,
        "movies": response.parse_body(answer.body.decode("utf-8")),
        "version": answer.version,
        "variant": answer.variant,
        "source": answer.source,
    }
    return Response(json.dumps(document), content_type=JSON_TYPE)
