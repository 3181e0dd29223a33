"""Prepared statements: planned once per PostgreSQL session, re-prepared on a new one, per thread."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from labeling import hotpath

pytestmark = pytest.mark.django_db


def prepared_names() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT name FROM pg_prepared_statements")
        return {name for (name,) in cursor.fetchall()}


def add(a: int, b: int) -> int:
    with connection.cursor() as cursor:
        hotpath.execute(cursor, "winnow_test_add", "SELECT %s::int + %s::int", [a, b])
        return cursor.fetchone()[0]


def test_a_statement_is_prepared_once_and_runs_with_each_calls_values():
    assert add(1, 2) == 3 and add(40, 2) == 42
    assert "winnow_test_add" in prepared_names()


@pytest.mark.django_db(transaction=True)
def test_a_new_session_prepares_again():
    assert add(1, 1) == 2
    connection.close()  # the next statement opens a new session, where nothing is prepared yet
    assert "winnow_test_add" not in prepared_names()
    assert add(2, 2) == 4


def test_each_thread_prepares_on_its_own_connection():
    results: list[object] = []

    def work(i: int) -> None:
        try:
            results.append(add(i, 1))
        except BaseException as exc:  # report it in the main thread
            results.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(results) == [1, 2, 3, 4]


def test_placeholders_and_values_must_match():
    with connection.cursor() as cursor, pytest.raises(ValueError, match="2 placeholders for 1 parameters"):
        hotpath.execute(cursor, "winnow_test_mismatch", "SELECT %s::int + %s::int", [1])


def test_switched_off_the_sql_runs_unprepared(settings):
    settings.WINNOW_PREPARED_STATEMENTS = False
    with connection.cursor() as cursor:
        hotpath.execute(cursor, "winnow_test_off", "SELECT %s::int * 2", [21])
        assert cursor.fetchone()[0] == 42
    assert "winnow_test_off" not in prepared_names()
