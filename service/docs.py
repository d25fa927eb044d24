"""``GET /docs``: Swagger UI over the service's own ``/openapi.json``, to read the API and try
it from a browser.

The page and its assets come from the pinned ``swagger-ui-bundle`` package (Swagger UI's
release build, no Python code of its own to speak of) installed in the image with the rest
of requirements.txt, and are served by the service itself: no CDN, so it works offline and
behind a firewall. The page is written here rather than taken from the bundle's template:
it loads only the two assets it needs, by relative URLs (so it also works under a path
prefix), turns off the online validator (Swagger UI would fetch a badge from
validator.swagger.io), and offers "Try it out" for GET, the only method of this API.
"""

from __future__ import annotations

from flask import Blueprint, Response, abort, send_from_directory
from swagger_ui_bundle import swagger_ui_path

HTML_TYPE = "text/html; charset=utf-8"
# What the page loads (and nothing else of the bundle is served).
ASSETS = frozenset(
    {"swagger-ui.css", "swagger-ui-bundle.js", "favicon-32x32.png", "favicon-16x16.png"}
)
ASSET_MAX_AGE = 24 * 3600  # seconds: the assets change only with the pinned package

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Movie recommendations: API</title>
  <link rel="stylesheet" href="docs/swagger-ui.css">
  <link rel="icon" type="image/png" href="docs/favicon-32x32.png" sizes="32x32">
  <link rel="icon" type="image/png" href="docs/favicon-16x16.png" sizes="16x16">
  <style>body { margin: 0; background: #fafafa; }</style>
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="docs/swagger-ui-bundle.js"></script>
  <script>
    window.onload = function () {
      window.ui = SwaggerUIBundle({
        url: "openapi.json",
        dom_id: "#swagger-ui",
        deepLinking: true,
        validatorUrl: null,
        supportedSubmitMethods: ["get"],
        presets: [SwaggerUIBundle.presets.apis],
        layout: "BaseLayout"
      });
    };
  </script>
</body>
</html>
"""

blueprint = Blueprint("docs", __name__)


@blueprint.get("/docs")
def page() -> Response:
    return Response(PAGE, content_type=HTML_TYPE)


@blueprint.get("/docs/<name>")
def asset(name: str) -> Response:
    if name not in ASSETS:
        abort(404)
    return send_from_directory(str(swagger_ui_path), name, max_age=ASSET_MAX_AGE)
