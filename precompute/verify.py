"""After the switch: read a sample of the new version the way its readers will, or roll back.

``finalize`` already compared every shard's sampled bodies before switching; this checks the
switched state from the outside, once it is live: ``rec:{ctl}:active`` names the version, its
cold-start list and a sample of users' lists (VERIFY_SAMPLE) hold 20 unique movie IDs each,
and, when SERVICE_URL names the lookup service, ``GET /recommend/<user>`` for the same users
answers 200 with exactly the stored list and the version in its header.

The sample is the first user keys a ``SCAN`` of the version meets: Redis walks its hash
table, so they are spread over the whole user range, and a retried check reads the same ones.
A failed check rolls the service back to the previous version when there is one (the
contract of the retrain: a failure anywhere leaves the previous version serving), then
raises ``VerifyError``.
"""

from __future__ import annotations

import logging
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from email.message import Message

from contracts import rediskeys
from contracts.response import LIST_LENGTH, VARIANT_HEADER, VERSION_HEADER, parse_body
from precompute import redisclient, versions
from precompute.redisclient import Client, connect
from precompute.settings import Settings

log = logging.getLogger(__name__)

# A service re-reads rec:{ctl}:active every VERSION_REFRESH_SECONDS (1 s by default): answers from
# the previous version are tolerated this long after the switch before they count as wrong.
SERVICE_CATCH_UP_SECONDS = 10.0
HTTP_TIMEOUT_SECONDS = 5.0


class VerifyError(RuntimeError):
    """The published version does not answer as it must; the message says what and whether
    the service was rolled back."""


@dataclass(frozen=True)
class Verified:
    version: str
    users: int  # users whose lists were read from Redis
    service_url: str | None
    service_users: int  # of those, asked through the service (0 without SERVICE_URL)

    def as_dict(self) -> dict:
        return asdict(self)


def verify_published(version: str, settings: Settings | None = None) -> Verified:
    """Check that ``version`` is live and whole (see the module doc); roll back and raise
    ``VerifyError`` if not."""
    settings = settings or Settings.from_env()
    # Decoded replies: every body is checked, and compared with the service's, as text.
    with connect(settings, decode_responses=True) as client:
        try:
            bodies = check_redis(client, version, settings.verify_sample)
            asked = 0
            if settings.service_url:
                asked = check_service(client, settings.service_url, version, bodies)
        except VerifyError as exc:
            raise VerifyError(f"{exc}; {_roll_back(client, version, settings)}") from exc
    result = Verified(version, len(bodies), settings.service_url, asked)
    log.info("verified %s", result)
    return result


def check_list(body: str, where: str) -> None:
    """One answer must be LIST_LENGTH unique movie IDs."""
    movies = parse_body(body)
    if len(movies) != LIST_LENGTH or len(set(movies)) != LIST_LENGTH:
        raise VerifyError(
            f"{where}: {len(movies)} movie IDs ({len(set(movies))} unique), "
            f"expected {LIST_LENGTH} unique"
        )


def check_redis(client: Client, version: str, sample: int) -> dict[int, str]:
    """The version is active and its lists are whole; returns the sampled users' bodies."""
    current = versions.active(client)
    if current != version:
        raise VerifyError(f"{rediskeys.ACTIVE} is {current}, not {version}")
    default = client.get(rediskeys.default(version))
    if default is None:
        raise VerifyError(f"version {version} has no cold-start list")
    check_list(versions.as_text(default), f"cold-start list of {version}")
    found: dict[str, None] = {}  # SCAN may return a key twice
    for key in redisclient.scan(client, rediskeys.user_pattern(version), count=1000):
        found[key] = None
        if len(found) == sample:
            break
    keys = list(found)
    if not keys:
        raise VerifyError(f"version {version} has no user list")
    bodies = {}
    for key, body in zip(keys, redisclient.mget(client, keys), strict=True):
        if body is None:
            raise VerifyError(f"{key} vanished while being verified")
        text = versions.as_text(body)
        check_list(text, key)
        bodies[rediskeys.user_of(version, versions.as_text(key))] = text
    return bodies


def check_service(client: Client, url: str, version: str, bodies: dict[int, str]) -> int:
    """Each sampled user gets exactly the stored list from the service, from ``version``
    (or from the version its A/B variant is pinned to); returns the users asked."""
    pinned = {
        versions.as_text(k): versions.as_text(v)
        for k, v in client.hgetall(rediskeys.VARIANT_VERSIONS).items()
    }
    deadline = time.monotonic() + SERVICE_CATCH_UP_SECONDS
    for user, stored in bodies.items():
        while True:
            status, headers, body = _get(f"{url.rstrip('/')}/recommend/{user}")
            expected = pinned.get(headers.get(VARIANT_HEADER, ""), version)
            served = headers.get(VERSION_HEADER)
            if served == expected or time.monotonic() > deadline:
                break
            time.sleep(0.2)  # the service may still be caching the previous rec:{ctl}:active
        where = f"service answer for user {user}"
        if status != 200:
            raise VerifyError(f"{where}: status {status}")
        if served != expected:
            raise VerifyError(f"{where}: {VERSION_HEADER} {served}, expected {expected}")
        check_list(body, where)
        # The refresher may have rewritten the user's list since the sample was read: the
        # service must answer what Redis holds now, not what it held then.
        if expected == version and body not in (stored, client.get(rediskeys.user(version, user))):
            raise VerifyError(f"{where}: differs from the list stored in Redis")
    return len(bodies)


def _get(url: str) -> tuple[int, Message, str]:
    """Status, headers (case-insensitive) and body of one GET; 4xx/5xx are answers too."""
    try:
        with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT_SECONDS) as answer:
            return answer.status, answer.headers, answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read().decode(errors="replace")
    except (urllib.error.URLError, OSError) as exc:
        raise VerifyError(f"service at {url} unreachable: {exc}") from exc


def _roll_back(client: Client, version: str, settings: Settings) -> str:
    """Put the previous version back if ``version`` is what is served; says what happened."""
    if versions.active(client) != version:
        return f"{version} is not served: nothing rolled back"
    try:
        previous = versions.rollback(client, settings.rollback_grace_seconds)
    except versions.PublishError as exc:
        return f"{version} keeps serving: {exc}"
    log.error("verification of %s failed: rolled back to %s", version, previous)
    return f"rolled back to {previous}"
