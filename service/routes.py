"""The HTTP surface: ``GET /recommend/<userid>`` and ``GET /healthz``.

User IDs are accepted only in canonical form, ``[1-9][0-9]{0,18}`` and at most 2**63-1 (the
ingest grammar's rule), so each user has exactly one URL and one Redis key. ``01`` is
rejected rather than read as 1: the caller never sends it, and accepting it would mean two
spellings of one user in the request logs.
"""

from __future__ import annotations

import re

from flask import Blueprint, Response, current_app

from service import response
from service.store import RecommendationStore, Unavailable

STORE_KEY = "recommendation_store"  # where create_app puts the store in app.extensions
MAX_USER_ID = 2**63 - 1
_USER_ID = re.compile(r"[1-9][0-9]{0,18}")

blueprint = Blueprint("recommend", __name__)


def text(body: str | bytes, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """Every answer of this service, errors included, is one line of text/plain."""
    return Response(body, status=status, headers=headers, content_type=response.CONTENT_TYPE)


@blueprint.get("/recommend/<userid>")
def recommend(userid: str) -> Response:
    if not _USER_ID.fullmatch(userid) or int(userid) > MAX_USER_ID:
        return text(f"userid must be a positive integer <= {MAX_USER_ID}", 400)
    store: RecommendationStore = current_app.extensions[STORE_KEY]
    answer = store.recommend(int(userid))
    if isinstance(answer, Unavailable):
        return text(answer.reason, 503)
    return text(
        answer.body,
        headers={"X-Model-Version": answer.version, "X-Recommendation-Source": answer.source},
    )


@blueprint.get("/healthz")
def healthz() -> Response:
    """Liveness only: touches no Redis, so a Redis outage never gets pods restarted."""
    return text("ok")
