"""The snapshot schema: Arrow schemas of every table the pipeline writes, in one module.

Writers (the consumer, the snapshot cutter) and readers (training, evaluation) import these;
bump ``SCHEMA_VERSION`` on any incompatible change so old snapshots are recognised.
"""

from __future__ import annotations

import pyarrow as pa

SCHEMA_VERSION = 1

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
