"""The response format of ``GET /recommend/<userid>``: one line of comma-separated movie IDs,
and the headers that say where it came from.

Built once per user by precompute and served byte for byte by the service, so both import
this module and nothing else defines the format.
"""

from __future__ import annotations

from collections.abc import Iterable

LIST_LENGTH = 20
SEPARATOR = ","
CONTENT_TYPE = "text/plain; charset=utf-8"
# Headers of every answer: the published version it came from, the user's A/B variant, and
# whether the list was the user's own, the cold-start list or the fallback.
VERSION_HEADER = "X-Model-Version"
VARIANT_HEADER = "X-AB-Variant"
SOURCE_HEADER = "X-Recommendation-Source"


class BadListError(ValueError):
    """A list that would break the contract (duplicates, separators inside an ID, too long)."""


def format_body(movie_ids: Iterable[str]) -> str:
    ids = list(movie_ids)
    if len(ids) > LIST_LENGTH:
        raise BadListError(f"{len(ids)} movies, at most {LIST_LENGTH}")
    if len(set(ids)) != len(ids):
        raise BadListError("duplicate movie IDs")
    for movie_id in ids:
        if not movie_id or any(c in movie_id for c in ", \r\n"):
            raise BadListError(f"bad movie ID {movie_id!r}")
    return SEPARATOR.join(ids)


def parse_body(body: str) -> list[str]:
    return body.split(SEPARATOR) if body else []
