"""A client-side deadline for database calls: a call on a connection that has not returned within its
time has the connection's socket shut down, so the blocked call fails at once instead of waiting for
a server that does not answer (a frozen or unreachable PostgreSQL: ``statement_timeout`` is the
server's own clock and TCP keep-alives are answered by the kernel, so neither helps then).

One watchdog thread serves every guarded call of a ``Database``::

    with watchdog.guard(conn, seconds) as g:
        result = fn(conn)
    g.fired  # True when the deadline passed (the connection is then unusable)
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import socket
import threading
import time
from contextlib import contextmanager
from typing import Any, Iterator

log = logging.getLogger(__name__)


class Guard:
    def __init__(self, conn: Any, deadline: float) -> None:
        self.conn = conn
        self.deadline = deadline
        self.fired = False
        self.done = False


def shut_socket(conn: Any) -> None:
    """Shut down a psycopg connection's socket from another thread: its blocked call returns with an error."""
    try:
        fd = conn.pgconn.socket
    except Exception:  # already closed
        return
    try:
        dup = socket.socket(fileno=os.dup(fd))
    except OSError:
        return
    try:
        dup.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    finally:
        dup.close()


class Watchdog:
    """The deadlines of the calls running now, and one daemon thread that enforces them."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Guard]] = []
        self._ids = itertools.count()
        self._thread: threading.Thread | None = None

    @contextmanager
    def guard(self, conn: Any, seconds: float | None) -> Iterator[Guard]:
        g = Guard(conn, time.monotonic() + seconds if seconds else float("inf"))
        if not seconds:
            yield g
            return
        with self._cond:
            heapq.heappush(self._heap, (g.deadline, next(self._ids), g))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="db-watchdog", daemon=True)
                self._thread.start()
            if self._heap[0][2] is g:  # the earliest deadline now: the thread must wake for it
                self._cond.notify()
        try:
            yield g
        finally:
            with self._cond:
                g.done = True  # the watchdog skips it from now on

    def _run(self) -> None:
        with self._cond:
            while True:
                while self._heap and self._heap[0][2].done:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._cond.wait()
                    continue
                deadline, _, g = self._heap[0]
                left = deadline - time.monotonic()
                if left > 0:
                    self._cond.wait(left)
                    continue
                heapq.heappop(self._heap)
                g.fired = True
                shut_socket(g.conn)  # quick, and under the lock: the call cannot finish and re-pool meanwhile
