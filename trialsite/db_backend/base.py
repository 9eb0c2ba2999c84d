"""Django's PostgreSQL backend with a cheaper CONN_HEALTH_CHECKS.

With CONN_HEALTH_CHECKS, Django checks a reused persistent connection once per request that touches the database
by sending `SELECT 1` (`is_usable`), so that a connection the server closed meanwhile (a restart, a terminated
backend, an idle timeout) is replaced instead of failing the request. That is one round trip, and a statement for
the server, on every such request: on GET /api/v1/me it was a third of the database work (issue 14).

A connection the server closed announces it: the server sends its FATAL message and closes the socket, which then
reads (the message, EOF) or reports a hang-up. An idle, healthy connection has nothing to read. So the check polls
the socket without waiting, and only when something is there runs Django's own check (`SELECT 1`, which then fails
and the connection is replaced). A connection that died silently (a network partition, no FIN) is not detected by
either check before its first statement times out. After a request that had a database error, Django still runs
`is_usable` at the request's end (close_if_unusable_or_obsolete), as before.
"""

from __future__ import annotations

import select

from django.db.backends.postgresql import base


class DatabaseWrapper(base.DatabaseWrapper):
    def close_if_health_check_failed(self):
        if self.pool or self.connection is None or not self.health_check_enabled or self.health_check_done:
            return super().close_if_health_check_failed()
        if self.server_may_have_closed() and not self.is_usable():
            self.close()
        self.health_check_done = True

    def server_may_have_closed(self) -> bool:
        """Something arrived on the idle connection (a FATAL message, EOF, a hang-up), or it is known broken."""
        raw = self.connection
        if raw.closed or raw.broken:
            return True
        try:
            poll = select.poll()
            poll.register(raw.pgconn.socket, select.POLLIN | select.POLLPRI)
            return bool(poll.poll(0))
        except (OSError, ValueError, self.Database.Error):
            return True
