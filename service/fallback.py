"""The last-resort list: shipped with the image (``service/fallback.txt``) or named by
FALLBACK_PATH, and served when Redis is down before this process ever read a list from it.

Checked against the response format when the service starts, by ``python -m service``
before gunicorn and again by each worker's store: a broken file stops the service at
startup, not during an outage. Standard library only, so checking it loads no metrics.
"""

from __future__ import annotations

from pathlib import Path

from contracts import response

FILE_VERSION = "fallback-file"  # X-Model-Version of an answer from this file


class FallbackError(ValueError):
    """The fallback list is unusable: the service must not start."""


def read_fallback(path: Path) -> bytes:
    """The file's list as a response body: exactly LIST_LENGTH unique, valid IDs."""
    try:
        text = path.read_text(encoding="utf-8").strip()
        ids = response.parse_body(text)
        if len(ids) != response.LIST_LENGTH:
            raise response.BadListError(f"{len(ids)} movies, want {response.LIST_LENGTH}")
        body = response.format_body(ids)
    except (OSError, UnicodeDecodeError, response.BadListError) as exc:
        raise FallbackError(f"FALLBACK_PATH {path} is unusable: {exc}") from None
    return body.encode("utf-8")
