"""Endpoints for operators and machines: liveness, readiness, metrics, the OpenAPI document.

``/healthz`` touches nothing, so a Redis outage never gets pods restarted. ``/readyz`` asks
Redis itself; it is meant for dashboards and rollout checks, not a load balancer's readiness
probe: pulling every replica out of rotation while Redis is down would turn the fallback
answers the service can still give into connection errors.
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app

from service import openapi, prom
from service.api import STORE_KEY, text
from service.lookup import RecommendationStore

blueprint = Blueprint("ops", __name__)


@blueprint.get("/healthz")
def healthz() -> Response:
    return text("ok")


@blueprint.get("/readyz")
def readyz() -> Response:
    store: RecommendationStore = current_app.extensions[STORE_KEY]
    ready, reason = store.readiness()
    return text(reason, 200 if ready else 503)


@blueprint.get("/metrics")
def prometheus_metrics() -> Response:
    current_app.extensions[STORE_KEY].export_age()  # the age as of this scrape
    body, content_type = prom.render()
    return Response(body, content_type=content_type)


@blueprint.get("/openapi.json")
def openapi_document() -> Response:
    return Response(openapi.BODY, content_type="application/json")
