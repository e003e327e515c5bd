"""Copy every Billfold table from one database to another, row for row."""

from __future__ import annotations

import time

from sqlalchemy import insert, select

from billfold.core.db import make_engine
from billfold.models import metadata

CHUNK = 5_000


def copy_database(source_url: str, target_url: str) -> float:
    """Copy all rows from ``source_url`` into the empty, migrated ``target_url`` in one
    transaction (the customer's deferred default-account key is checked at its commit).
    Returns the seconds it took."""
    started = time.perf_counter()
    source, target = make_engine(source_url), make_engine(target_url)
    try:
        with source.connect() as reading, target.begin() as writing:
            for table in metadata.sorted_tables:
                rows = reading.execute(select(table)).mappings()
                while chunk := [dict(row) for row in rows.fetchmany(CHUNK)]:
                    writing.execute(insert(table), chunk)
    finally:
        source.dispose()
        target.dispose()
    return time.perf_counter() - started
