"""The gunicorn worker: gthread, except that a request line too long to parse gets the
service's one-line 400 instead of gunicorn's HTML 414 page.

gunicorn refuses a request line longer than ``limit_request_line`` (4094 bytes) before the
app sees it. Such a line can only be an absurd user ID (or junk), and the API's rule for
those is a 400 with one line of text, like every other answer of this service; which status a
caller gets must not depend on how absurd the ID is. Every other error keeps gunicorn's own
handling.
"""

from __future__ import annotations

import contextlib

from gunicorn import util
from gunicorn.http.errors import LimitRequestLine
from gunicorn.workers.gthread import ThreadWorker

from contracts import response

TOO_LONG = b"request line too long: userid must be a positive integer of at most 19 digits"


class PlainErrorThreadWorker(ThreadWorker):
    def handle_error(self, req, client, addr, exc) -> None:
        if not isinstance(exc, LimitRequestLine):
            super().handle_error(req, client, addr, exc)
            return
        self.log.warning("Invalid request from ip=%s: %s", (addr or ("",))[0], exc)
        head = (
            "HTTP/1.1 400 Bad Request\r\nConnection: close\r\n"
            f"Content-Type: {response.CONTENT_TYPE}\r\nContent-Length: {len(TOO_LONG)}\r\n\r\n"
        )
        with contextlib.suppress(OSError):  # the client went away: nothing to answer
            util.write_nonblock(client, head.encode("latin-1") + TOO_LONG)
