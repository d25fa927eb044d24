"""The two tables every module of ``online`` passes around, built in one place.

Recommendations (one row per request served, from the service's request log or the
stream's ``recommendation request`` lines)::

    time        datetime64[ns]  event time, naive UTC
    user        Int64           NA for a request whose user ID was rejected
    status      int64           HTTP status
    variant     str             A/B variant; "stream" for the stream's lines
    version     str             model version served; "unknown" for the stream's lines
    source      str             personal | cold_start | fallback | stream | none
    latency_ms  float64
    movies      object          tuple of movie IDs, best first; () unless status is 200

Watches (one row per watched minute, from the journal)::

    time        datetime64[ns]  naive UTC
    user        int64
    movie       str
    minute      int64
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import numpy as np
import pandas as pd

from contracts import requestrecord

STREAM_VARIANT = "stream"  # the stream's lines say nothing about A/B variants...
UNKNOWN_VERSION = "unknown"  # ...or model versions
NO_LABEL = requestrecord.NO_LABEL  # variant/version/source of a request answered without a list

RECOMMENDATION_COLUMNS = (
    "time",
    "user",
    "status",
    "variant",
    "version",
    "source",
    "latency_ms",
    "movies",
)
WATCH_COLUMNS = ("time", "user", "movie", "minute")


def recommendations(
    *,
    time: Sequence[datetime] | pd.Series,
    user: Sequence[int | None] | pd.Series,
    status: Sequence[int] | pd.Series,
    variant: Sequence[str] | pd.Series,
    version: Sequence[str] | pd.Series,
    source: Sequence[str] | pd.Series,
    latency_ms: Sequence[float] | pd.Series,
    movies: Sequence[tuple[str, ...]] | pd.Series,
) -> pd.DataFrame:
    """A recommendations table with the documented dtypes; columns are taken by position
    (a Series' index is ignored)."""
    return pd.DataFrame(
        {
            "time": _times(time),
            "user": pd.array(_values(user), dtype="Int64"),
            "status": np.asarray(_values(status), dtype="int64"),
            "variant": pd.array(_values(variant), dtype="str"),
            "version": pd.array(_values(version), dtype="str"),
            "source": pd.array(_values(source), dtype="str"),
            "latency_ms": np.asarray(_values(latency_ms), dtype="float64"),
            "movies": _objects(movies),
        }
    )


def empty_recommendations() -> pd.DataFrame:
    return recommendations(**{name: [] for name in RECOMMENDATION_COLUMNS})


def watches(
    time: Sequence[datetime] | pd.Series,
    user: Sequence[int] | pd.Series,
    movie: Sequence[str] | pd.Series,
    minute: Sequence[int] | pd.Series,
) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "time": _times(time),
            "user": np.asarray(_values(user), dtype="int64"),
            "movie": pd.array(_values(movie), dtype="str"),
            "minute": np.asarray(_values(minute), dtype="int64"),
        }
    )


def empty_watches() -> pd.DataFrame:
    return watches([], [], [], [])


def _values(column: Sequence | pd.Series) -> Sequence | np.ndarray:
    return column.to_numpy() if isinstance(column, pd.Series) else column


def _times(column: Sequence[datetime] | pd.Series) -> np.ndarray:
    """Nanosecond datetimes; an aware time becomes naive UTC."""
    return np.asarray(pd.to_datetime(_values(column)), dtype="datetime64[ns]")


def _objects(column: Sequence | pd.Series) -> np.ndarray:
    return pd.Series(list(_values(column)), dtype=object).to_numpy()
