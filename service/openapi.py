"""The OpenAPI document served at ``/openapi.json``: the service's HTTP surface, for callers,
for the Swagger UI at ``/docs`` (``service.docs``), and for the schemathesis run in the tests,
which checks the real gunicorn against it.

Written out as data rather than generated from the routes: it is the contract, so a route
that drifts from it should fail that test, not silently change the document.
"""

from __future__ import annotations

import json
from typing import Any

from contracts import ab, response
from contracts.response import SOURCE_HEADER, VARIANT_HEADER, VERSION_HEADER
from contracts.userid import MAX_USER_ID

_ONE_LINE = {"type": "string", "pattern": r"^[^\r\n]+$"}
_MOVIE_ID = r"[^,\s]+"
_TEXT_LINE = {"text/plain": {"schema": _ONE_LINE}}
_LIST = rf"^{_MOVIE_ID}(,{_MOVIE_ID}){{{response.LIST_LENGTH - 1}}}$"  # 20 IDs, comma-separated


def _text(description: str) -> dict[str, Any]:
    return {"description": description, "content": _TEXT_LINE}


def _header(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "required": True, "schema": schema}


_RECOMMEND = {
    "get": {
        "operationId": "recommend",
        "summary": "The user's 20 recommended movies, best first",
        "description": (
            "Precomputed answers only: one Redis read, nothing computed. Unknown users get the "
            "cold-start list; if Redis is slow or down, a fallback list. Always 200 for a valid "
            "user ID. The ID must be written in canonical decimal form (no sign, no leading "
            "zeros). Accept: application/json gets the same list as a JSON object."
        ),
        "parameters": [
            {
                "name": "userid",
                "in": "path",
                "required": True,
                "schema": {"type": "integer", "minimum": 1, "maximum": MAX_USER_ID},
            },
        ],
        "responses": {
            "200": {
                "description": "20 unique movie IDs",
                "headers": {
                    VERSION_HEADER: _header(
                        "The published model version the list comes from "
                        "(fallback-file: the list shipped with the image)",
                        {"type": "string", "minLength": 1},
                    ),
                    VARIANT_HEADER: _header(
                        "The user's A/B variant", {"type": "string", "pattern": r"^[a-z0-9_-]+$"}
                    ),
                    SOURCE_HEADER: _header(
                        "personal, cold_start (unknown user) or fallback (Redis unavailable)",
                        {"type": "string", "enum": ["personal", "cold_start", "fallback"]},
                    ),
                },
                "content": {
                    "text/plain": {
                        "schema": {
                            "type": "string",
                            "pattern": _LIST,
                        },
                        "example": "the+matrix+1999,avatar+2009,big+hero+6+2014,...",
                    },
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["user", "movies", "version", "variant", "source"],
                            "properties": {
                                "user": {"type": "integer", "minimum": 1},
                                "movies": {
                                    "type": "array",
                                    "items": {"type": "string", "pattern": rf"^{_MOVIE_ID}$"},
                                    "minItems": response.LIST_LENGTH,
                                    "maxItems": response.LIST_LENGTH,
                                    "uniqueItems": True,
                                },
                                "version": {"type": "string", "minLength": 1},
                                "variant": {"type": "string"},
                                "source": {
                                    "type": "string",
                                    "enum": ["personal", "cold_start", "fallback"],
                                },
                            },
                        }
                    },
                },
            },
            "400": _text("The user ID is not a positive integer in canonical form, or too long"),
            "404": _text("A user ID containing a slash, or empty: not a /recommend path"),
        },
    }
}

DOCUMENT: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {
        "title": "Movie recommendations",
        "version": "1",
        "description": (
            "The lookup service of the movie recommender. Every error body is one line of "
            "text/plain; unknown paths are 404, other methods 405 with an Allow header. "
            f"Without an A/B split every user is in variant '{ab.DEFAULT_VARIANT}'."
        ),
    },
    "paths": {
        "/recommend/{userid}": _RECOMMEND,
        "/healthz": {
            "get": {
                "operationId": "healthz",
                "summary": "Liveness: the process answers (touches no Redis)",
                "responses": {"200": _text("ok")},
            }
        },
        "/readyz": {
            "get": {
                "operationId": "readyz",
                "summary": "Redis reachable and an active version present",
                "description": (
                    "For dashboards and rollout checks, not for load-balancer readiness: while "
                    "Redis is down the service still answers from its fallback list."
                ),
                "responses": {"200": _text("ready"), "503": _text("not ready, and why")},
            }
        },
        "/metrics": {
            "get": {
                "operationId": "metrics",
                "summary": "Prometheus metrics of every worker",
                "responses": {
                    "200": {
                        "description": "Prometheus text exposition format",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
        "/docs": {
            "get": {
                "operationId": "docs",
                "summary": "Swagger UI over this document: read the API and try it",
                "description": (
                    "An HTML page; its assets (/docs/swagger-ui.css, /docs/swagger-ui-bundle.js) "
                    "are served by the service itself."
                ),
                "responses": {
                    "200": {
                        "description": "Swagger UI",
                        "content": {"text/html": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
        "/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document",
                "responses": {
                    "200": {
                        "description": "OpenAPI 3.0 document",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    }
                },
            }
        },
    },
}

BODY = json.dumps(DOCUMENT, indent=1).encode("utf-8")  # serialised once per process
