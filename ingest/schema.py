"""The snapshot schema: Arrow schemas of every table the pipeline writes, in one module.

Writers (the consumer, the snapshot cutter) and readers (training, evaluation) import these;
bump ``SCHEMA_VERSION`` on any incompatible change so old snapshots are recognised.
"""

from __future__ import annotations

import pyarrow as pa

SCHEMA_VERSION = 2

TIME = pa.timestamp("us")

# One row per accepted event, in stream order; (partition, offset) identifies it for good.
JOURNAL = pa.schema(
    [
        ("partition", pa.int32()),
        ("offset", pa.int64()),
        ("kind", pa.string()),  # watch | rate | recommendation | account
        ("time", TIME),
        ("user_id", pa.int64()),
        ("movie_id", pa.string()),
        ("minute", pa.int32()),
        ("rating", pa.int16()),
        ("status", pa.int16()),
        ("latency_ms", pa.int32()),
        ("movies", pa.string()),  # recommendation result, comma-separated, or the error text
    ]
)

# Latest rating per (user, movie).
RATINGS = pa.schema(
    [("user_id", pa.int64()), ("movie_id", pa.string()), ("rating", pa.int16()), ("time", TIME)]
)

# Watch history per (user, movie): distinct minutes seen, first and last time.
WATCHES = pa.schema(
    [
        ("user_id", pa.int64()),
        ("movie_id", pa.string()),
        ("minutes", pa.int32()),
        ("first_time", TIME),
        ("last_time", TIME),
    ]
)

# Every user the stream has mentioned (ratings, watches, recommendations, new accounts).
USERS = pa.schema(
    [
        ("user_id", pa.int64()),
        ("first_seen", TIME),
        ("last_seen", TIME),
        ("events", pa.int64()),
        ("rated", pa.int32()),  # distinct movies rated
        ("watched", pa.int32()),  # distinct movies watched
    ]
)

# Every movie users rated or watched.
MOVIES = pa.schema(
    [
        ("movie_id", pa.string()),
        ("first_seen", TIME),
        ("last_seen", TIME),
        ("ratings", pa.int32()),  # users whose latest rating is of this movie
        ("rating_mean", pa.float64()),  # of those latest ratings; null when unrated
        ("watchers", pa.int32()),
    ]
)
