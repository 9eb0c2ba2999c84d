"""CONN_HEALTH_CHECKS without a round trip (trialsite.db_backend): a reused, healthy connection is not sent
`SELECT 1` at the start of a request; a connection the server closed (here: its backend terminated, as a server
restart does) is replaced before the request's first statement, which then succeeds."""

import time

import pytest
from django.db import DEFAULT_DB_ALIAS, connection, connections

pytestmark = pytest.mark.django_db


def backend_pid(db) -> int:
    with db.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def test_a_healthy_connection_costs_no_round_trip_and_a_closed_one_is_replaced(monkeypatch):
    db = connections.create_connection(DEFAULT_DB_ALIAS)  # a connection of its own, in autocommit as in production
    checks = []
    original = type(db).is_usable
    monkeypatch.setattr(type(db), "is_usable", lambda self: checks.append(1) or original(self))
    try:
        assert db.settings_dict["CONN_HEALTH_CHECKS"] is True
        pid = backend_pid(db)

        db.close_if_unusable_or_obsolete()  # a request ends: the next use of the connection is checked
        assert backend_pid(db) == pid  # reused
        assert checks == []  # and no SELECT 1 was sent for it

        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
            assert cursor.fetchone()[0] is True
        deadline = time.monotonic() + 10
        while not db.server_may_have_closed():  # the server's FATAL message and EOF arrive asynchronously
            assert time.monotonic() < deadline, "the terminated connection never showed it"
            time.sleep(0.01)

        db.close_if_unusable_or_obsolete()  # the next request
        new_pid = backend_pid(db)  # its first statement succeeds, on a new connection
        assert new_pid != pid and checks == [1]  # Django's own check ran, once, on the suspect connection
    finally:
        db.close()
