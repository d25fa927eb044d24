"""The gunicorn worker: gthread, with two changes.

**A one-line 400 for a request line too long to parse**, instead of gunicorn's HTML 414 page.
gunicorn refuses a request line longer than ``limit_request_line`` (4094 bytes) before the
app sees it. Such a line can only be an absurd user ID (or junk), and the API's rule for
those is a 400 with one line of text, like every other answer of this service; which status a
caller gets must not depend on how absurd the ID is. Every other error keeps gunicorn's own
handling.

**A clean exit within the graceful timeout.** gthread reads a request on a pool thread with
a blocking socket and no deadline, and Python joins every pool thread before a process
exits. So one client that connected and sent nothing (a browser's spare connection) holds a
thread for 5 s, and one that sent half a request holds it until it hangs up: the worker
either overruns its ``graceful_timeout`` or cannot exit at all, and the master SIGKILLs it
("Perhaps out of memory?") before ``worker_exit`` has flushed the request log. Here:

- on SIGTERM (graceful) the worker finishes its in-flight requests as gthread does, but
  ``CLEANUP_SECONDS`` before the master's deadline it shuts down every connection it still
  holds, which wakes the threads blocked on them, so it always exits in time and
  ``worker_exit`` runs;
- on SIGINT/SIGQUIT (quick stop) it shuts them down at once, and handles the signal once
  only: Ctrl-C in a terminal reaches every process of its group and the master forwards a
  SIGQUIT on top, and a second ``sys.exit`` raised inside the first exit's cleanup would
  abort that cleanup half-way.
"""

from __future__ import annotations

import contextlib
import socket
import threading

from gunicorn import util
from gunicorn.http.errors import LimitRequestLine
from gunicorn.workers.gthread import ThreadWorker

from contracts import response

TOO_LONG = b"request line too long: userid must be a positive integer of at most 19 digits"
# What a stopping worker keeps of its graceful_timeout for worker_exit and its own exit: the
# request log's Kafka flush takes up to 2 s (service.kafkasink.CLOSE_FLUSH_SECONDS), and
# kafka-python's own exit hook up to 1 s more.
CLEANUP_SECONDS = 4.0


class PlainErrorThreadWorker(ThreadWorker):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._in_pool: set = set()  # connections handed to the thread pool, not yet back
        self._quitting = False
        self._cutoff: threading.Timer | None = None

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

    # -- knowing which connections are open ----------------------------------------------

    def enqueue_req(self, conn) -> None:
        self._in_pool.add(conn)
        super().enqueue_req(conn)

    def finish_request(self, conn, fs) -> None:
        self._in_pool.discard(conn)
        super().finish_request(conn, fs)

    def cut_connections(self) -> None:
        """Shut down every connection this worker holds, in the pool or waiting in the
        poller: a thread blocked reading one wakes up (end of stream) and finishes."""
        held = [*self._in_pool, *self.keepalived_conns, *self.pending_conns]
        for conn in held:
            with contextlib.suppress(OSError, ValueError):
                conn.sock.shutdown(socket.SHUT_RDWR)

    # -- stopping -------------------------------------------------------------------------

    def handle_exit(self, sig, frame) -> None:
        """SIGTERM: drain as gthread does, but cut what is left in time for the cleanup."""
        if self.alive and self._cutoff is None:
            grace = max(0.0, self.cfg.graceful_timeout - CLEANUP_SECONDS)
            self._cutoff = threading.Timer(grace, self.cut_connections)
            self._cutoff.daemon = True
            self._cutoff.start()
        super().handle_exit(sig, frame)

    def handle_quit(self, sig, frame) -> None:
        """SIGINT/SIGQUIT: stop now, once."""
        if self._quitting:
            return
        self._quitting = True
        self.cut_connections()
        super().handle_quit(sig, frame)

    def run(self) -> None:
        try:
            super().run()
        finally:
            if self._cutoff is not None:
                self._cutoff.cancel()
            self.cut_connections()  # whatever outlived the drain must not block the exit
