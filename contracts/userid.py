"""The user-ID rule: a positive integer that fits a signed 64-bit integer.

The stream's grammar (``ingest.events``), the service's URL (``service.api``) and the request
log's reader (``online.logreader``) all accept exactly these IDs, so a user the pipeline
keeps is a user the service can be asked about, and the other way round.
"""

from __future__ import annotations

import re

MAX_USER_ID = 2**63 - 1
BAD_USER_ID = f"userid must be a positive integer <= {MAX_USER_ID}"
# The canonical spelling: no sign, no leading zero, at most 19 digits (the range check
# then rules out 19-digit numbers past MAX_USER_ID).
CANONICAL = re.compile(r"[1-9][0-9]{0,18}")


def valid_user_id(user_id: int) -> bool:
    return 0 < user_id <= MAX_USER_ID


def parse_user_id(raw: str) -> int | None:
    """The ID spelt canonically in ``raw``, or None: each user has exactly one spelling."""
    if not CANONICAL.fullmatch(raw):
        return None
    user_id = int(raw)
    return user_id if user_id <= MAX_USER_ID else None
