"""Writing many rows in the caller's transaction with the driver's fastest path.

For batch jobs (a bill run's batch of accounts) where building one SQL parameter set per
row is most of the cost: on PostgreSQL rows are inserted with ``COPY`` (a few rows with
one ``executemany``) and updated with one statement joined to ``unnest`` arrays; on
SQLite both are one ``executemany`` on the connection's cursor. Values pass through each
column's bind processor first, so what the database receives is exactly what an ORM or
Core insert would have sent.

These bypass the ORM: the session's identity map does not learn of the rows, and Python
side column defaults are applied only when they are constants.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

from sqlalchemy import Column, Table, exc
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session

from billfold.core.db import (
    SCALAR_LIST,
    constant_default,
    pg_array,
    send_waiting,
    write_later,
    writes_wait,
)


def _converter(dialect: Dialect, columns: Sequence[Column[Any]]
               ) -> Callable[[Sequence[Any]], Sequence[Any]]:
    """What turns a row's values (in ``columns`` order) into the parameters the driver
    gets: each column's bind processor, on the columns that have one."""
    processors = [(position, _remembering(process))
                  for position, process in _bind_processors(dialect, tuple(columns))]

    def convert(values: Sequence[Any]) -> Sequence[Any]:
        if not processors:
            return values
        converted = list(values)
        for position, process in processors:
            if converted[position] is not None:
                converted[position] = process(converted[position])
        return converted

    return convert


@lru_cache(maxsize=512)
def _bind_processors(dialect: Dialect, columns: tuple[Column[Any], ...]
                     ) -> tuple[tuple[int, Callable[[Any], Any]], ...]:
    """(position, processor) of the columns that have one; worked out once per dialect and
    column list (a bill run inserts into the same tables thousands of times)."""
    return tuple((position, process) for position, column in enumerate(columns)
                 if (process := column.type.dialect_impl(dialect).bind_processor(dialect)))


def _remembering(process: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``process`` that converts each distinct value once: a batch's rows share their
    dates and timestamps."""
    seen: dict[Any, Any] = {}

    def remembered(value: Any) -> Any:
        try:
            return seen[value]
        except KeyError:
            converted = seen[value] = process(value)
            return converted
        except TypeError:  # unhashable (a JSON list or object)
            return process(value)

    return remembered


@contextmanager
def _as_sqlalchemy_errors(dialect: Dialect, statement: str) -> Iterator[None]:
    """Raise the driver's errors as SQLAlchemy's (IntegrityError for a duplicate key), as a
    statement run through the session would."""
    dbapi_error = dialect.loaded_dbapi.Error
    try:
        yield
    except dbapi_error as error:
        raise exc.DBAPIError.instance(statement, None, error, dbapi_error) from error


def _quoted(dialect: Dialect, name: str) -> str:
    return dialect.identifier_preparer.quote(name)


# Up to this many rows go to PostgreSQL as INSERTs, more as COPY.
FEW_ROWS = 16


def insert_rows(session: Session, table: Table, rows: Sequence[Mapping[str, Any]], *,
                skip_conflicts_on: Sequence[str] = ()) -> None:
    """Insert ``rows`` (dicts with the same keys) into ``table``. With
    ``skip_conflicts_on`` (the columns of a unique key), a row whose key is taken already
    (by a concurrent transaction too) is left out instead of failing the insert."""
    if not rows:
        return
    names = list(rows[0])
    keys = rows[0].keys()
    if any(row.keys() != keys for row in rows):
        raise ValueError(f"rows for {table.name} must all have the same keys")
    defaults = {column.name: constant_default(column) for column in table.columns
                if column.name not in names and column.default is not None}
    names += list(defaults)
    columns = [table.c[name] for name in names]
    connection = session.connection()
    dialect = connection.dialect
    convert = _converter(dialect, columns)
    extra = tuple(defaults.values())
    given = operator.itemgetter(*names[:len(names) - len(extra)])
    if len(names) - len(extra) == 1:
        values = [convert((given(row), *extra)) for row in rows]
    else:
        values = [convert(given(row) + extra) for row in rows]
    column_list = ", ".join(_quoted(dialect, name) for name in names)
    dbapi = connection.connection
    skip = (" ON CONFLICT (" + ", ".join(_quoted(dialect, n) for n in skip_conflicts_on)
            + ") DO NOTHING") if skip_conflicts_on else ""
    if dialect.name == "postgresql":
        driver = dbapi.driver_connection
        assert driver is not None
        if len(values) <= FEW_ROWS:
            # COPY costs PostgreSQL a quarter of a millisecond to set up: more than
            # inserting a payment's few postings, which psycopg sends in one round trip.
            marks = ", ".join("%s" for _ in names)
            statement = (f"INSERT INTO {_quoted(dialect, table.name)} ({column_list}) "
                         f"VALUES ({marks}){skip}")
            if writes_wait(session) is not None:  # sent with the next statement
                write_later(connection, statement, values if len(values) > 1 else values[0],
                            many=len(values) > 1)
                return
            send_waiting(connection)  # the driver is used directly: what waits goes first
            with _as_sqlalchemy_errors(dialect, statement), driver.cursor() as cursor:
                if len(values) == 1:  # a payment's entry: executemany's pipeline costs more
                    cursor.execute(statement, values[0])
                else:
                    cursor.executemany(statement, values)
            return
        send_waiting(connection)
        if skip:
            # COPY cannot skip a row: one INSERT of the columns as arrays, unnested.
            arrays = ", ".join(f"%s::{column.type.compile(dialect=dialect)}[]"
                               for column in columns)
            statement = (f"INSERT INTO {_quoted(dialect, table.name)} ({column_list}) "
                         f"SELECT * FROM unnest({arrays}){skip}")
            with _as_sqlalchemy_errors(dialect, statement), driver.cursor() as cursor:
                cursor.execute(statement,
                               [_array(column) for column in zip(*values, strict=True)])
            return
        statement = f"COPY {_quoted(dialect, table.name)} ({column_list}) FROM STDIN"
        with _as_sqlalchemy_errors(dialect, statement), driver.cursor() as cursor, \
                cursor.copy(statement) as copy:
            for value in values:
                copy.write_row(value)
        return
    marks = ", ".join("?" for _ in names)
    statement = (f"INSERT INTO {_quoted(dialect, table.name)} ({column_list}) "
                 f"VALUES ({marks}){skip}")
    cursor = dbapi.cursor()
    try:
        with _as_sqlalchemy_errors(dialect, statement):
            cursor.executemany(statement, values)
    finally:
        cursor.close()


def _array(values: Sequence[Any]) -> Any:
    """An array parameter: its text form where db.pg_array writes it (faster than psycopg's
    adapting each element), else the list."""
    literal = pg_array(values)
    return list(values) if literal is None else literal


def update_rows(session: Session, table: Table, column: str, rows: Sequence[tuple[Any, Any]],
                *, key: str = "id", add: bool = False) -> None:
    """Set ``column`` to the value given for each (key, value) in ``rows``; with ``add``,
    add the value to it instead. Order the rows by key when concurrent callers may update
    the same rows, so they lock in one order."""
    if not rows:
        return
    connection = session.connection()
    dialect = connection.dialect
    key_column, value_column = table.c[key], table.c[column]
    name, target, key_name = (_quoted(dialect, table.name), _quoted(dialect, column),
                              _quoted(dialect, key))
    convert = _converter(dialect, [key_column, value_column])
    values = [convert(row) for row in rows]
    new_value = f"{name}.{target} + v.value" if add else "v.value"
    dbapi = connection.connection
    if dialect.name == "postgresql":
        key_type = key_column.type.compile(dialect=dialect)
        value_type = value_column.type.compile(dialect=dialect)
        if len(values) <= SCALAR_LIST:
            # A few rows (a payment's two or three ledger accounts) as scalars: PostgreSQL
            # plans the statement once per connection, where arrays it cannot see had it
            # plan each run afresh (db.DirectAmong).
            pair = f"(%s::{key_type}, %s::{value_type})"
            statement = (f"UPDATE {name} SET {target} = {new_value} "
                         f"FROM (VALUES {', '.join([pair] * len(values))}) AS v(key, value) "
                         f"WHERE {name}.{key_name} = v.key")
            parameters: tuple[Any, ...] = tuple(item for row in values for item in row)
        else:
            # The keys are given twice: joined to the values alone, the planner may hash
            # the whole table (a sequential scan per batch: a bill run's service updates
            # grew with the table, 20 ms a batch over 60,000 services); "= ANY" finds just
            # the rows in the key's index.
            statement = (f"UPDATE {name} SET {target} = {new_value} "
                         f"FROM unnest(%s::{key_type}[], %s::{value_type}[]) AS v(key, value) "
                         f"WHERE {name}.{key_name} = v.key "
                         f"AND {name}.{key_name} = ANY(%s::{key_type}[])")
            keys = _array([k for k, _ in values])
            parameters = (keys, _array([v for _, v in values]), keys)
        if writes_wait(session) is not None:  # sent with the next statement
            write_later(connection, statement, parameters)
            return
        send_waiting(connection)
        cursor = dbapi.cursor()
        try:
            with _as_sqlalchemy_errors(dialect, statement):
                cursor.execute(statement, parameters)
        finally:
            cursor.close()
        return
    new_value = f"{target} + ?" if add else "?"
    statement = f"UPDATE {name} SET {target} = {new_value} WHERE {key_name} = ?"
    cursor = dbapi.cursor()
    try:
        with _as_sqlalchemy_errors(dialect, statement):
            cursor.executemany(statement, [(v, k) for k, v in values])
    finally:
        cursor.close()
