"""A PostgreSQL database for the benches that log to one.

The database ``CHATWIRE_DATABASE_URL`` names, if it is a PostgreSQL one;
otherwise a new database in a throwaway cluster of Debian's package, made
and removed as the tests do it (``tests/postgres.py``).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator

from _env import ROOT


@contextlib.contextmanager
def postgres_url() -> Iterator[str]:
    with postgres_databases() as new_database:
        yield new_database()


@contextlib.contextmanager
def postgres_databases() -> Iterator[Callable[[], str]]:
    """A function that gives a new database's URL each call (the given one, every
    time, when ``CHATWIRE_DATABASE_URL`` names one)."""
    from chatwire.store import DATABASE_URL_ENV

    given = os.environ.get(DATABASE_URL_ENV, "")
    if given.startswith(("postgresql://", "postgres://")):
        yield lambda: given
        return
    sys.path.insert(0, str(ROOT))
    from tests.postgres import PostgresCluster

    with PostgresCluster() as cluster:
        yield cluster.new_database
